package secrets

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

// fakeKubernetesLogin is a Vault stand-in that records the JWT of every
// Kubernetes login.
type fakeKubernetesLogin struct {
	mu   sync.Mutex
	jwts []string
}

func (f *fakeKubernetesLogin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/auth/kubernetes/login" {
		http.NotFound(w, r)
		return
	}
	var body struct{ Role, JWT string }
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.jwts = append(f.jwts, body.JWT)
	f.mu.Unlock()

	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"auth": map[string]any{"client_token": "token-for-" + body.JWT, "lease_duration": 60, "renewable": true},
	})
}

func TestKubernetesLoginRereadsTokenFile(t *testing.T) {
	fake := &fakeKubernetesLogin{}
	server := httptest.NewServer(fake)
	t.Cleanup(server.Close)

	cfg := vault.DefaultConfig()
	cfg.Address = server.URL
	client, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}

	tokenFile := filepath.Join(t.TempDir(), "token")
	auth := &KubernetesAuth{Role: "rotor", TokenPath: tokenFile}

	// The kubelet rewrites a projected token before it expires; each
	// login must send the token on disk at that moment.
	for _, jwt := range []string{"first-jwt", "second-jwt"} {
		if err := os.WriteFile(tokenFile, []byte(jwt+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		secret, err := client.Auth().Login(t.Context(), auth)
		if err != nil {
			t.Fatalf("login with %s: %v", jwt, err)
		}
		if got, want := secret.Auth.ClientToken, "token-for-"+jwt; got != want {
			t.Errorf("got token %q, want %q", got, want)
		}
	}

	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(fake.jwts) != 2 || fake.jwts[0] != "first-jwt" || fake.jwts[1] != "second-jwt" {
		t.Errorf("got logins with %q, want first-jwt then second-jwt", fake.jwts)
	}
}

func TestKubernetesLoginMissingTokenFile(t *testing.T) {
	client, err := vault.NewClient(vault.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	auth := &KubernetesAuth{Role: "rotor", TokenPath: filepath.Join(t.TempDir(), "missing")}

	if _, err := auth.Login(t.Context(), client); err == nil {
		t.Fatal("got no error for a missing token file, want one")
	}
}
