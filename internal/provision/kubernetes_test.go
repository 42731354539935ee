package provision

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"

	"example.com/rotor/internal/testenv"
)

// apiServerAlias is the network alias of the stand-in for the Kubernetes API
// server. It accepts TCP connections, logs each one and closes it, so every
// TLS handshake with it fails.
const apiServerAlias = "kubernetes-api"

const testNamespace = "team-a"

func TestConfigureKubernetesTwice(t *testing.T) {
	nw := testenv.NewNetwork(t)
	apiServer := startAPIServerStandIn(t, nw)
	client := testenv.StartVault(t, nw).RootClient(t)
	ctx := t.Context()

	skipped := Options{}
	skipped.setDefaults()
	if err := configureKubernetes(ctx, client, skipped); err != nil {
		t.Fatalf("configure kubernetes auth without a host: %v", err)
	}
	if enabled := authMethods(t, client); enabled["kubernetes/"] != nil {
		t.Fatal("kubernetes auth is enabled without a host, want the step skipped")
	}

	caCert := selfSignedCA(t)
	opts := kubernetesOptions(caCert)
	for run := 1; run <= 2; run++ {
		if err := configurePolicy(ctx, client, opts); err != nil {
			t.Fatalf("run %d: configure policy: %v", run, err)
		}
		if err := configureKubernetes(ctx, client, opts); err != nil {
			t.Fatalf("run %d: configure kubernetes auth: %v", run, err)
		}
	}

	method := authMethods(t, client)["kubernetes/"]
	if method == nil || method.Type != "kubernetes" {
		t.Fatalf("auth method at kubernetes/: got %+v, want type kubernetes", method)
	}

	config := read(t, client, "auth/kubernetes/config")
	checkField(t, config, "kubernetes_host", "https://"+apiServerAlias+":6443")
	checkField(t, config, "kubernetes_ca_cert", caCert)

	rotorRole := read(t, client, "auth/kubernetes/role/"+KubernetesRole)
	checkField(t, rotorRole, "bound_service_account_names", "[rotor]")
	checkField(t, rotorRole, "bound_service_account_namespaces", "["+testNamespace+"]")
	checkField(t, rotorRole, "audience", DefaultTokenAudience)
	checkField(t, rotorRole, "token_policies", "["+Policy+"]")
	checkField(t, rotorRole, "token_ttl", "3600")
	checkField(t, rotorRole, "token_max_ttl", "86400")

	issuerRole := read(t, client, "auth/kubernetes/role/"+IssuerRole)
	checkField(t, issuerRole, "bound_service_account_names", "["+DefaultIssuerServiceAccount+"]")
	checkField(t, issuerRole, "bound_service_account_namespaces", "["+testNamespace+"]")
	checkField(t, issuerRole, "audience", "vault://"+testNamespace+"/"+DefaultIssuerName)
	checkField(t, issuerRole, "token_policies", "["+IssuerPolicy+"]")

	policy, err := client.Sys().GetPolicyWithContext(ctx, IssuerPolicy)
	if err != nil {
		t.Fatalf("read policy %s: %v", IssuerPolicy, err)
	}
	if !strings.Contains(policy, `"pki_int/sign/server"`) {
		t.Errorf("policy %s: got %q, want the path pki_int/sign/server", IssuerPolicy, policy)
	}

	// Writing the configuration twice opened no connection to the API
	// server. A login that passes the role's checks must ask the API server
	// to review the token, so it connects, and the stand-in cannot confirm
	// the token.
	if got := apiServer.connections(t); got != 0 {
		t.Fatalf("connections to the API server after writing the configuration: got %d, want 0", got)
	}
	err = login(ctx, client, KubernetesRole, serviceAccountJWT(t, "other-namespace", DefaultServiceAccount, DefaultTokenAudience))
	if err == nil || !strings.Contains(err.Error(), "namespace not authorized") {
		t.Fatalf("login from another namespace: got %v, want namespace not authorized", err)
	}
	err = login(ctx, client, KubernetesRole, serviceAccountJWT(t, testNamespace, DefaultServiceAccount, "other-audience"))
	if err == nil || !strings.Contains(err.Error(), "invalid audience") {
		t.Fatalf("login with another audience: got %v, want invalid audience", err)
	}
	if got := apiServer.connections(t); got != 0 {
		t.Fatalf("connections to the API server after rejected logins: got %d, want 0", got)
	}
	err = login(ctx, client, KubernetesRole, serviceAccountJWT(t, testNamespace, DefaultServiceAccount, DefaultTokenAudience))
	if err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("login that the API server cannot confirm: got %v, want permission denied", err)
	}
	if got := apiServer.waitForConnections(t, 1); got != 1 {
		t.Fatalf("connections to the API server after a login: got %d, want 1", got)
	}
}

func TestIssuerPolicySignsOnlyServerCertificates(t *testing.T) {
	client := testenv.StartVault(t, testenv.NewNetwork(t)).RootClient(t)
	ctx := t.Context()

	opts := kubernetesOptions(selfSignedCA(t))
	if err := configurePKI(ctx, client, opts); err != nil {
		t.Fatalf("configure pki: %v", err)
	}
	if err := configureKubernetes(ctx, client, opts); err != nil {
		t.Fatalf("configure kubernetes auth: %v", err)
	}

	issuer := tokenWithPolicy(t, client, IssuerPolicy)
	name := "rotor." + testNamespace + ".svc.cluster.local"
	csr := ecdsaCSR(t, name)

	signed, err := issuer.Logical().WriteWithContext(ctx, IntermediateMount+"/sign/"+ServerCertRole, map[string]any{
		"csr":         csr,
		"common_name": name,
	})
	if err != nil {
		t.Fatalf("sign a server CSR with policy %s: %v", IssuerPolicy, err)
	}
	if cert, _ := signed.Data["certificate"].(string); !strings.Contains(cert, "BEGIN CERTIFICATE") {
		t.Fatalf("signed certificate: got %q, want a PEM certificate", cert)
	}

	_, err = issuer.Logical().WriteWithContext(ctx, IntermediateMount+"/sign/"+ClientCertRole, map[string]any{
		"csr":         csr,
		"common_name": name,
	})
	if err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("sign a client CSR with policy %s: got %v, want permission denied", IssuerPolicy, err)
	}
}

func kubernetesOptions(caCert string) Options {
	opts := Options{Kubernetes: KubernetesOptions{
		Host:      "https://" + apiServerAlias + ":6443",
		CACert:    caCert,
		Namespace: testNamespace,
	}}
	opts.setDefaults()
	return opts
}

func authMethods(t *testing.T, client *vault.Client) map[string]*vault.AuthMount {
	t.Helper()

	auths, err := client.Sys().ListAuthWithContext(t.Context())
	if err != nil {
		t.Fatalf("list auth methods: %v", err)
	}
	return auths
}

func read(t *testing.T, client *vault.Client, path string) map[string]any {
	t.Helper()

	secret, err := client.Logical().ReadWithContext(t.Context(), path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if secret == nil {
		t.Fatalf("read %s: not found", path)
	}
	return secret.Data
}

// checkField compares a field of a Vault response as fmt.Sprint prints it,
// so that a list reads [a b] and a number 3600.
func checkField(t *testing.T, data map[string]any, key, want string) {
	t.Helper()

	if got := fmt.Sprint(data[key]); got != want {
		t.Errorf("%s: got %q, want %q", key, got, want)
	}
}

func login(ctx context.Context, client *vault.Client, role, jwt string) error {
	_, err := client.Logical().WriteWithContext(ctx, "auth/"+KubernetesMount+"/login", map[string]any{
		"role": role,
		"jwt":  jwt,
	})
	return err
}

func tokenWithPolicy(t *testing.T, root *vault.Client, policy string) *vault.Client {
	t.Helper()

	secret, err := root.Auth().Token().CreateWithContext(t.Context(), &vault.TokenCreateRequest{
		Policies:        []string{policy},
		NoDefaultPolicy: true,
		TTL:             "5m",
	})
	if err != nil {
		t.Fatalf("create a token with policy %s: %v", policy, err)
	}
	client, err := root.Clone()
	if err != nil {
		t.Fatalf("clone vault client: %v", err)
	}
	client.SetToken(secret.Auth.ClientToken)
	return client
}

// apiServerStandIn is a container that logs one line per accepted TCP
// connection.
type apiServerStandIn struct {
	container *testcontainers.DockerContainer
}

// startAPIServerStandIn runs a Perl listener on port 6443 of the base image,
// which has Perl because Debian installs it everywhere.
func startAPIServerStandIn(t *testing.T, nw *testcontainers.DockerNetwork) *apiServerStandIn {
	t.Helper()

	image := os.Getenv("ROTOR_BASE_IMAGE")
	if image == "" {
		image = "debian:bookworm-slim"
	}
	const script = `$| = 1;
my $server = IO::Socket::INET->new(LocalPort => 6443, Listen => 16, ReuseAddr => 1) or die "listen: $!";
print "listening\n";
while (my $conn = $server->accept) { print "accepted\n"; close $conn; }`

	ctr, err := testcontainers.Run(t.Context(), image,
		network.WithNetwork([]string{apiServerAlias}, nw),
		testcontainers.WithEntrypoint("perl", "-MIO::Socket::INET", "-e", script),
		testcontainers.WithWaitStrategyAndDeadline(time.Minute, wait.ForLog("listening")),
	)
	testcontainers.CleanupContainer(t, ctr)
	if err != nil {
		t.Fatalf("start the API server stand-in: %v", err)
	}
	return &apiServerStandIn{container: ctr}
}

// connections returns how many connections the stand-in has accepted.
func (s *apiServerStandIn) connections(t *testing.T) int {
	t.Helper()

	logs, err := s.container.Logs(t.Context())
	if err != nil {
		t.Fatalf("read the API server stand-in's logs: %v", err)
	}
	defer logs.Close()
	raw, err := io.ReadAll(logs)
	if err != nil {
		t.Fatalf("read the API server stand-in's logs: %v", err)
	}
	return strings.Count(string(raw), "accepted")
}

// waitForConnections polls the stand-in's logs for up to 10 seconds, until
// it has accepted at least want connections, and returns the count then.
// Docker delivers a container's output to its log with a short delay.
func (s *apiServerStandIn) waitForConnections(t *testing.T, want int) int {
	t.Helper()

	deadline := time.Now().Add(10 * time.Second)
	for {
		got := s.connections(t)
		if got >= want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// serviceAccountJWT returns a token with the claims of a projected service
// account token, signed with a key generated now. Vault is configured with
// no public keys, so it does not verify the signature and sends the token
// to the API server's TokenReview API instead.
func serviceAccountJWT(t *testing.T, namespace, serviceAccount, audience string) string {
	t.Helper()

	now := time.Now()
	claims := map[string]any{
		"aud": []string{audience},
		"iss": "https://kubernetes.default.svc.cluster.local",
		"sub": "system:serviceaccount:" + namespace + ":" + serviceAccount,
		"iat": now.Unix(),
		"exp": now.Add(10 * time.Minute).Unix(),
		"kubernetes.io": map[string]any{
			"namespace":      namespace,
			"serviceaccount": map[string]string{"name": serviceAccount, "uid": "6f1a3c1e-0000-4000-8000-000000000001"},
		},
	}
	header := base64JSON(t, map[string]string{"alg": "ES256", "typ": "JWT"})
	signingInput := header + "." + base64JSON(t, claims)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate a signing key: %v", err)
	}
	digest := sha256.Sum256([]byte(signingInput))
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		t.Fatalf("sign the token: %v", err)
	}

	// A JWS ES256 signature is r and s, each as 32 big-endian bytes.
	signature := make([]byte, 64)
	r.FillBytes(signature[:32])
	s.FillBytes(signature[32:])
	return signingInput + "." + base64.RawURLEncoding.EncodeToString(signature)
}

func base64JSON(t *testing.T, v any) string {
	t.Helper()

	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode %v: %v", v, err)
	}
	return base64.RawURLEncoding.EncodeToString(raw)
}

// selfSignedCA returns a CA certificate in PEM form, standing in for the
// cluster's CA in the auth method's configuration.
func selfSignedCA(t *testing.T) string {
	t.Helper()

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate a CA key: %v", err)
	}
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test kubernetes CA"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("create a CA certificate: %v", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// ecdsaCSR returns a PEM CSR with a P-256 key, the key type of the server
// certificate role, as cert-manager sends it to the sign endpoint.
func ecdsaCSR(t *testing.T, dnsName string) string {
	t.Helper()

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate a CSR key: %v", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: dnsName},
		DNSNames: []string{dnsName},
	}, key)
	if err != nil {
		t.Fatalf("create a CSR: %v", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}
