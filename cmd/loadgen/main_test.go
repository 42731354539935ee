package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"example.com/rotor/internal/tlsx/tlsxtest"
)

// startCreateOnlyAPI starts an HTTPS server that requires a client
// certificate and responds to every POST /v1/notes with 201 and the note. It
// returns the server's URL and a certificate directory for the client.
func startCreateOnlyAPI(t *testing.T) (string, string) {
	t.Helper()

	ca := tlsxtest.NewCA(t, "test CA")
	var lastID atomic.Int64
	server := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/notes" {
			http.Error(w, "only POST /v1/notes is served", http.StatusNotFound)
			return
		}
		var note map[string]string
		if err := json.NewDecoder(r.Body).Decode(&note); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		note["id"] = fmt.Sprint(lastID.Add(1))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(note)
	}))
	// Handshakes cut short when the test closes the server are expected, so
	// the server's log is discarded.
	server.Config.ErrorLog = log.New(io.Discard, "", 0)
	server.EnableHTTP2 = true
	server.TLS = &tls.Config{
		Certificates: []tls.Certificate{ca.IssueServer(t, "127.0.0.1").TLSCertificate()},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool(),
	}
	server.StartTLS()
	t.Cleanup(server.Close)

	certDir := filepath.Join(t.TempDir(), "client")
	client := ca.Issue(t, tlsxtest.Leaf{
		URIs:        []string{"spiffe://rotor.test/client/loadgen"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	tlsxtest.WriteSecretDir(t, certDir, client, ca)
	return server.URL, certDir
}

func TestRunPrintsSummary(t *testing.T) {
	url, certDir := startCreateOnlyAPI(t)
	var stdout, stderr strings.Builder

	err := run(context.Background(), []string{
		"loadgen", "-url", url, "-cert-dir", certDir, "-rate", "500", "-requests", "20",
		"-write-ratio", "1", "-patch-ratio", "0", "-verify=false",
	}, &stdout, &stderr)

	if err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	for _, want := range []string{"or 20 requests", "requests:   20 in", "create 20, patch 0, get 0, list 0", "failures:   0"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, &stdout)
		}
	}
}

func TestRunClosedLoopPrintsSummary(t *testing.T) {
	url, certDir := startCreateOnlyAPI(t)
	var stdout, stderr strings.Builder

	err := run(context.Background(), []string{
		"loadgen", "-url", url, "-cert-dir", certDir, "-rate", "0", "-concurrency", "4", "-requests", "20",
		"-write-ratio", "1", "-patch-ratio", "0", "-verify=false",
	}, &stdout, &stderr)

	if err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	for _, want := range []string{"in a closed loop of 4 workers", "requests:   20 in", "(from each request's start)", "failures:   0"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, &stdout)
		}
	}
}

func TestRunReportsFailedRequests(t *testing.T) {
	url, certDir := startCreateOnlyAPI(t)
	var stdout, stderr strings.Builder

	// Every list request gets 404 from this server.
	err := run(context.Background(), []string{
		"loadgen", "-url", url, "-cert-dir", certDir, "-rate", "500", "-requests", "10",
		"-write-ratio", "0", "-list-ratio", "1",
	}, &stdout, &stderr)

	if err == nil || err.Error() != "10 of 10 requests failed" {
		t.Errorf("got error %v, want 10 of 10 requests failed", err)
	}
	if !strings.Contains(stdout.String(), "unexpected_status  10") {
		t.Errorf("stdout lacks the count of unexpected statuses:\n%s", &stdout)
	}
}

func TestRunRejectsInvalidInput(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want error
		text string // in the error or stderr
	}{
		{"help", []string{"-help"}, flag.ErrHelp, "-write-ratio"},
		{"unknown flag", []string{"-ratio", "3"}, errUsage, "flag provided but not defined"},
		{"extra argument", []string{"https://localhost:8443"}, errUsage, "takes only flags"},
		{"missing certificate", []string{"-cert-dir", "no/such/dir"}, nil, "load client certificate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr strings.Builder

			err := run(context.Background(), append([]string{"loadgen"}, tc.args...), &stdout, &stderr)

			if err == nil {
				t.Fatal("got no error, want one")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("got error %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error()+stderr.String(), tc.text) {
				t.Errorf("neither the error %q nor stderr %q contains %q", err, &stderr, tc.text)
			}
		})
	}
}
