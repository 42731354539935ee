package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"example.com/rotor/internal/handlers"
	"example.com/rotor/internal/provision"
	"example.com/rotor/internal/tlsx/tlsxtest"
)

const (
	alice = "spiffe://rotor.test/client/alice"
	bob   = "spiffe://rotor.test/client/bob"
)

type note struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Body  string `json:"body"`
}

type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
}

// do sends a request and returns the status and body.
func do(t *testing.T, client *http.Client, method, url, contentType string, body []byte) (int, http.Header, []byte) {
	t.Helper()

	req, err := http.NewRequestWithContext(context.Background(), method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()

	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read response of %s %s: %v", method, url, err)
	}
	return resp.StatusCode, resp.Header, data
}

func decode[T any](t *testing.T, data []byte) T {
	t.Helper()

	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	return v
}

func TestNotesCRUDOverMTLS(t *testing.T) {
	s := startStack(t, provision.Options{})
	client := s.client(t, alice)
	notesURL := s.baseURL() + "/v1/notes"

	status, header, body := do(t, client, "POST", notesURL, "application/json", []byte(`{"title":"first","body":"hello"}`))
	if status != http.StatusCreated {
		t.Fatalf("create: got status %d, want 201: %s", status, body)
	}
	created := decode[note](t, body)
	if created.Title != "first" || created.Body != "hello" || created.ID == "" {
		t.Fatalf("create: got %+v", created)
	}
	if got, want := header.Get("Location"), "/v1/notes/"+created.ID; got != want {
		t.Errorf("create: got Location %q, want %q", got, want)
	}

	status, _, body = do(t, client, "GET", notesURL+"/"+created.ID, "", nil)
	if status != http.StatusOK {
		t.Fatalf("get: got status %d, want 200: %s", status, body)
	}
	if got := decode[note](t, body); got != created {
		t.Errorf("get: got %+v, want %+v", got, created)
	}

	status, _, body = do(t, client, "PATCH", notesURL+"/"+created.ID, "application/json", []byte(`{"body":"changed"}`))
	if status != http.StatusOK {
		t.Fatalf("patch: got status %d, want 200: %s", status, body)
	}
	if got := decode[note](t, body); got.Body != "changed" || got.Title != "first" {
		t.Errorf("patch: got %+v, want title first and body changed", got)
	}

	// The largest page: the handler requests one note more from the store.
	status, _, body = do(t, client, "GET", notesURL+"?limit=100", "", nil)
	if status != http.StatusOK {
		t.Fatalf("list: got status %d, want 200: %s", status, body)
	}
	list := decode[struct{ Items []note }](t, body)
	if len(list.Items) != 1 || list.Items[0].ID != created.ID {
		t.Errorf("list: got %+v, want the one note", list.Items)
	}

	status, _, body = do(t, client, "DELETE", notesURL+"/"+created.ID, "", nil)
	if status != http.StatusNoContent {
		t.Fatalf("delete: got status %d, want 204: %s", status, body)
	}
	status, _, _ = do(t, client, "GET", notesURL+"/"+created.ID, "", nil)
	if status != http.StatusNotFound {
		t.Errorf("get after delete: got status %d, want 404", status)
	}
}

func TestHandshakeRejectsUntrustedClients(t *testing.T) {
	s := startStack(t, provision.Options{})

	otherCA := tlsxtest.NewCA(t, "another CA")
	stranger := otherCA.Issue(t, tlsxtest.Leaf{
		URIs:        []string{alice},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})

	// GetClientCertificate sends the certificate even though its issuer is
	// not among the CAs that the server lists, as a misconfigured client
	// would.
	cases := []struct {
		name      string
		cert      *tls.Certificate
		wantInLog string
	}{
		{"no certificate", nil, "client didn't provide a certificate"},
		{"certificate from another CA", ptr(stranger.TLSCertificate()), "certificate signed by unknown authority"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client := s.httpClient(&tls.Config{
				RootCAs: s.rootCA,
				GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
					if tc.cert == nil {
						return &tls.Certificate{}, nil
					}
					return tc.cert, nil
				},
			})
			resp, err := client.Get(s.baseURL() + "/v1/notes")
			if err == nil {
				resp.Body.Close()
				t.Fatalf("got status %d, want a failed handshake", resp.StatusCode)
			}
			waitForLog(t, s.logs, tc.wantInLog)
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestClientsSeeOnlyTheirOwnNotes(t *testing.T) {
	s := startStack(t, provision.Options{})
	aliceClient, bobClient := s.client(t, alice), s.client(t, bob)
	notesURL := s.baseURL() + "/v1/notes"

	_, _, body := do(t, bobClient, "POST", notesURL, "application/json", []byte(`{"title":"bob's","body":"private"}`))
	bobsNote := decode[note](t, body)

	requests := []struct {
		method, body string
	}{
		{"GET", ""},
		{"PATCH", `{"title":"taken"}`},
		{"DELETE", ""},
	}
	for _, r := range requests {
		status, header, body := do(t, aliceClient, r.method, notesURL+"/"+bobsNote.ID, "application/json", []byte(r.body))
		if status != http.StatusNotFound {
			t.Errorf("%s of another client's note: got status %d, want 404: %s", r.method, status, body)
		}
		if ct := header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s: got Content-Type %q, want application/problem+json", r.method, ct)
		}
	}

	_, _, body = do(t, aliceClient, "GET", notesURL, "", nil)
	if list := decode[struct{ Items []note }](t, body); len(list.Items) != 0 {
		t.Errorf("alice's list: got %d notes, want none", len(list.Items))
	}

	status, _, body := do(t, bobClient, "GET", notesURL+"/"+bobsNote.ID, "", nil)
	if status != http.StatusOK || decode[note](t, body).Title != "bob's" {
		t.Errorf("bob's own note: got status %d %s, want 200 and the note unchanged", status, body)
	}
}

func TestBadInputsGetProblems(t *testing.T) {
	s := startStack(t, provision.Options{})
	client := s.client(t, alice)
	notesURL := s.baseURL() + "/v1/notes"

	cases := []struct {
		name        string
		method, url string
		contentType string
		body        []byte
		wantStatus  int
		wantType    string
	}{
		{"malformed JSON", "POST", notesURL, "application/json", []byte(`{"title":`), 400, handlers.ProblemMalformedJSON},
		{"unknown field", "POST", notesURL, "application/json", []byte(`{"title":"a","owner":"bob"}`), 400, handlers.ProblemUnknownField},
		{"oversized body", "POST", notesURL, "application/json", oversizedNote(), 413, handlers.ProblemBodyTooLarge},
		{"wrong content type", "POST", notesURL, "text/plain", []byte(`{"title":"a"}`), 415, handlers.ProblemUnsupportedMediaType},
		{"title too long", "POST", notesURL, "application/json", []byte(`{"title":"` + strings.Repeat("x", 201) + `"}`), 422, handlers.ProblemValidation},
		{"invalid id", "GET", notesURL + "/not-a-uuid", "", nil, 400, handlers.ProblemInvalidID},
		{"NUL character", "POST", notesURL, "application/json", []byte(`{"title":"a\u0000b"}`), 422, handlers.ProblemValidation},
		{"limit above a page", "GET", notesURL + "?limit=101", "", nil, 400, handlers.ProblemInvalidParameter},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, header, body := do(t, client, tc.method, tc.url, tc.contentType, tc.body)
			if status != tc.wantStatus {
				t.Errorf("got status %d, want %d: %s", status, tc.wantStatus, body)
			}
			if ct := header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("got Content-Type %q, want application/problem+json", ct)
			}
			p := decode[problem](t, body)
			if p.Type != tc.wantType {
				t.Errorf("got problem type %q, want %q", p.Type, tc.wantType)
			}
			if p.Status != tc.wantStatus {
				t.Errorf("got problem status %d, want %d", p.Status, tc.wantStatus)
			}
		})
	}
}

func oversizedNote() []byte {
	return []byte(`{"title":"big","body":"` + strings.Repeat("x", 1<<20) + `"}`)
}
