package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"example.com/rotor/internal/tlsx"
	"example.com/rotor/internal/tlsx/tlsxtest"
)

// seenRequest is what the test server saw of one request.
type seenRequest struct {
	Method, Path, Identity, Body string
}

// apiServer is a mutual-TLS server that responds to every request with the
// JSON of seenRequest, or with a 403 problem for the identity forbidden.
type apiServer struct {
	url       string
	ca        *tlsxtest.CA
	forbidden string
}

func startAPIServer(t *testing.T) *apiServer {
	t.Helper()

	ca := tlsxtest.NewCA(t, "rotor test CA")
	serverDir := t.TempDir()
	tlsxtest.WriteSecretDir(t, serverDir, ca.IssueServer(t, "127.0.0.1"), ca)
	source, err := tlsx.Load(serverDir, "")
	if err != nil {
		t.Fatalf("load server certificate: %v", err)
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on 127.0.0.1: %v", err)
	}
	api := &apiServer{url: "https://" + listener.Addr().String(), ca: ca}

	server := &http.Server{
		Handler:           http.HandlerFunc(api.serveHTTP),
		TLSConfig:         source.ServerConfig(),
		ReadHeaderTimeout: 5 * time.Second,
	}
	served := make(chan error, 1)
	go func() { served <- server.ServeTLS(listener, "", "") }()
	t.Cleanup(func() {
		server.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("ServeTLS: got %v, want %v", err, http.ErrServerClosed)
		}
	})
	return api
}

func (api *apiServer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	identity := tlsx.ClientIdentity(r.TLS.VerifiedChains[0][0])
	if identity == api.forbidden {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"type":"urn:rotor:problem:forbidden","title":"Client not allowed","status":403,"detail":"Not you."}`)
		return
	}
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(seenRequest{Method: r.Method, Path: r.URL.Path, Identity: identity, Body: string(body)})
}

// writeClientDir writes a client certificate for identity in the kubelet
// layout and returns the directory.
func (api *apiServer) writeClientDir(t *testing.T, dir, identity string) string {
	t.Helper()

	tlsxtest.WriteVolume(t, dir, tlsxtest.SecretFiles(t, api.ca.IssueClient(t, identity), api.ca))
	return dir
}

// syncBuffer is a bytes.Buffer that run may write to from its goroutine
// while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runClient runs the command once and decodes what the server saw.
func runClient(t *testing.T, args ...string) seenRequest {
	t.Helper()

	var stdout, stderr syncBuffer
	if err := run(t.Context(), append([]string{"client"}, args...), &stdout, &stderr); err != nil {
		t.Fatalf("run %q: %v; stderr:\n%s", args, err, stderr.String())
	}
	var seen seenRequest
	if err := json.Unmarshal([]byte(stdout.String()), &seen); err != nil {
		t.Fatalf("decode output %q: %v", stdout.String(), err)
	}
	return seen
}

func TestClientCommands(t *testing.T) {
	api := startAPIServer(t)
	const identity = "spiffe://rotor.test/client/alice"
	dir := api.writeClientDir(t, t.TempDir(), identity)

	tests := []struct {
		name string
		args []string
		want seenRequest
	}{
		{"create", []string{"create", "title", "body"}, seenRequest{Method: "POST", Path: "/v1/notes", Body: `{"body":"body","title":"title"}`}},
		{"create without body", []string{"create", "only a title"}, seenRequest{Method: "POST", Path: "/v1/notes", Body: `{"title":"only a title"}`}},
		{"list", []string{"list"}, seenRequest{Method: "GET", Path: "/v1/notes"}},
		{"get", []string{"get", "0190d6f6-0000-7000-8000-000000000000"}, seenRequest{Method: "GET", Path: "/v1/notes/0190d6f6-0000-7000-8000-000000000000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.want.Identity = identity

			got := runClient(t, append([]string{"-dir", dir, "-url", api.url}, tt.args...)...)

			if got != tt.want {
				t.Errorf("request seen by server: got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestClientReportsProblem(t *testing.T) {
	api := startAPIServer(t)
	api.forbidden = "spiffe://rotor.test/client/mallory"
	dir := api.writeClientDir(t, t.TempDir(), api.forbidden)
	var stdout, stderr syncBuffer

	err := run(t.Context(), []string{"client", "-dir", dir, "-url", api.url, "list"}, &stdout, &stderr)

	if err == nil {
		t.Fatal("run: got nil error, want the 403 problem")
	}
	for _, want := range []string{"403", "Client not allowed", "urn:rotor:problem:forbidden", "Not you."} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q: want it to contain %q", err, want)
		}
	}
}

func TestClientRejectsInvalidCommandLine(t *testing.T) {
	tests := [][]string{
		{},
		{"delete", "x"},
		{"get"},
		{"list", "extra"},
		{"create"},
	}
	for _, args := range tests {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var stdout, stderr syncBuffer

			err := run(t.Context(), append([]string{"client", "-dir", t.TempDir()}, args...), &stdout, &stderr)

			if !errors.Is(err, errUsage) {
				t.Errorf("run: got error %v, want errUsage", err)
			}
			if !strings.Contains(stderr.String(), "Usage: client") {
				t.Errorf("stderr: got %q, want the usage", stderr.String())
			}
		})
	}
}

func TestClientFollowsRenewedCertificate(t *testing.T) {
	api := startAPIServer(t)
	dir := api.writeClientDir(t, t.TempDir(), "spiffe://rotor.test/client/before")
	ctx, cancel := context.WithCancel(t.Context())
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"client", "-dir", dir, "-url", api.url, "-every", "20ms", "list"}, &stdout, &stderr)
	}()

	const renewed = "spiffe://rotor.test/client/after"
	api.writeClientDir(t, dir, renewed)

	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(stdout.String(), renewed) {
		if time.Now().After(deadline) {
			t.Fatalf("the server never saw %s; output:\n%s\nstderr:\n%s", renewed, stdout.String(), stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run with -every: got %v, want nil after the context ended", err)
	}
	if strings.Contains(stderr.String(), "client:") {
		t.Errorf("stderr: got request errors, want none:\n%s", stderr.String())
	}
}
