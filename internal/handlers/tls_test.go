package handlers

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// TestMutualTLS serves the API on a loopback TLS listener, so that the
// identity comes from a certificate that crypto/tls verified.
func TestMutualTLS(t *testing.T) {
	uri, err := url.Parse(clientA)
	if err != nil {
		t.Fatalf("parse identity: %v", err)
	}
	clientCert := newCertificate(t, &x509.Certificate{URIs: []*url.URL{uri}})
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(clientCert.Leaf)

	srv := newTestServer(t)
	listener := httptest.NewUnstartedServer(srv.handler)
	// VerifyClientCertIfGiven lets a client without a certificate finish
	// the handshake, so that the handler's own 401 can be tested.
	listener.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: clientCAs}
	listener.StartTLS()
	defer listener.Close()

	// Each subtest gets its own transport, so that no connection made with
	// a certificate is reused by the subtest without one.
	newClient := func(t *testing.T, certificates ...tls.Certificate) *http.Client {
		roots := x509.NewCertPool()
		roots.AddCert(listener.Certificate())
		transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certificates}}
		t.Cleanup(transport.CloseIdleConnections)
		return &http.Client{Transport: transport}
	}

	t.Run("with certificate", func(t *testing.T) {
		resp, err := newClient(t, clientCert).Post(listener.URL+"/v1/notes", "application/json", strings.NewReader(`{"title":"over TLS"}`))
		if err != nil {
			t.Fatalf("POST: %v", err)
		}
		defer resp.Body.Close()

		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("status: got %d, want %d", resp.StatusCode, http.StatusCreated)
		}
		stored, err := srv.store.List(t.Context(), clientA, uuid.Nil, 10)
		if err != nil || len(stored) != 1 {
			t.Errorf("notes of %s: got %d (error %v), want 1", clientA, len(stored), err)
		}
	})

	t.Run("without certificate", func(t *testing.T) {
		resp, err := newClient(t).Get(listener.URL + "/v1/notes")
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		defer resp.Body.Close()

		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status: got %d, want %d", resp.StatusCode, http.StatusUnauthorized)
		}
		var problem problemBody
		if err := json.NewDecoder(resp.Body).Decode(&problem); err != nil {
			t.Fatalf("decode problem: %v", err)
		}
		if problem.Type != ProblemUnauthenticated {
			t.Errorf("problem type: got %q, want %q", problem.Type, ProblemUnauthenticated)
		}
	})
}
