package handlers

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"example.com/rotor/internal/notes"
)

func TestMissingClientCertificate(t *testing.T) {
	// The subject has no common name, and the certificate has no SANs.
	noIdentity := newCertificate(t, &x509.Certificate{Subject: pkix.Name{Organization: []string{"rotor tests"}}}).Leaf
	withSAN := authenticate(t, newRequest(http.MethodGet, "/", ""), clientA).TLS.VerifiedChains[0][0]

	tests := []struct {
		name string
		tls  *tls.ConnectionState
	}{
		{"plain HTTP", nil},
		{"no client certificate", &tls.ConnectionState{}},
		// A certificate that the TLS layer did not verify proves nothing.
		{"unverified certificate", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{withSAN}}},
		{"empty chain", &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{}}}},
		{"certificate without identity", &tls.ConnectionState{
			PeerCertificates: []*x509.Certificate{noIdentity},
			VerifiedChains:   [][]*x509.Certificate{{noIdentity}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newTestServer(t)
			req := newRequest(http.MethodGet, "/v1/notes", "")
			req.TLS = tc.tls

			rec := srv.serve(req)

			checkProblem(t, rec, http.StatusUnauthorized, ProblemUnauthenticated)
			if got := len(srv.logRecordsWith(t, slog.LevelError, "request failed")); got != 0 {
				t.Errorf("Error log lines: got %d, want 0", got)
			}
		})
	}
}

func TestStoreFailure(t *testing.T) {
	srv := newTestServer(t)
	srv.store.failWith(errors.New("connection to 10.0.0.7:5432 refused"))

	rec := srv.send(t, clientA, http.MethodGet, "/v1/notes", "")

	problem := checkProblem(t, rec, http.StatusInternalServerError, ProblemInternal)
	if problem.Detail != internalDetail {
		t.Errorf("detail: got %q, want %q", problem.Detail, internalDetail)
	}
	if strings.Contains(rec.Body.String(), "10.0.0.7") {
		t.Errorf("body: got %s, want no trace of the store error", rec.Body)
	}

	records := srv.logRecordsWith(t, slog.LevelError, "request failed")
	if len(records) != 1 {
		t.Fatalf("Error log lines: got %d, want 1; log:\n%s", len(records), srv.logs)
	}
	if got, want := records[0]["request_id"], rec.Header().Get(RequestIDHeader); got != want {
		t.Errorf("request_id: got %v, want %q", got, want)
	}
	if got, _ := records[0]["error"].(string); !strings.Contains(got, "connection to 10.0.0.7:5432 refused") {
		t.Errorf("error: got %q, want the store error", got)
	}
	if got, want := records[0]["route"], "/v1/notes"; got != want {
		t.Errorf("route: got %v, want %q", got, want)
	}
}

func TestClientGoneNotLoggedAsError(t *testing.T) {
	srv := newTestServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := authenticate(t, newRequest(http.MethodGet, "/v1/notes", ""), clientA).WithContext(ctx)

	rec := srv.serve(req)

	checkProblem(t, rec, StatusClientClosedRequest, ProblemClientClosedRequest)
	if got := len(srv.logRecordsWith(t, slog.LevelError, "request failed")); got != 0 {
		t.Errorf("Error log lines: got %d, want 0; log:\n%s", got, srv.logs)
	}
}

func TestUnmatchedRoutes(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		target     string
		wantStatus int
		wantType   string
		wantAllow  []string
	}{
		{"unknown path", http.MethodGet, "/v2/notes", 404, ProblemNotFound, nil},
		{"path below a note", http.MethodGet, "/v1/notes/" + uuid.NewString() + "/tags", 404, ProblemNotFound, nil},
		{"trailing slash", http.MethodGet, "/v1/notes/", 404, ProblemNotFound, nil},
		{"PUT on the collection", http.MethodPut, "/v1/notes", 405, ProblemMethodNotAllowed, []string{"GET", "POST"}},
		{"POST on a note", http.MethodPost, "/v1/notes/" + uuid.NewString(), 405, ProblemMethodNotAllowed, []string{"GET", "PATCH", "DELETE"}},
		{"unknown method", "BREW", "/v1/notes", 405, ProblemMethodNotAllowed, []string{"GET", "POST"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newTestServer(t)

			rec := srv.send(t, clientA, tc.method, tc.target, "")

			checkProblem(t, rec, tc.wantStatus, tc.wantType)
			if got := rec.Header().Values("Allow"); strings.Join(got, ",") != strings.Join(tc.wantAllow, ",") {
				t.Errorf("Allow: got %v, want %v", got, tc.wantAllow)
			}
		})
	}
}

func TestAccessLog(t *testing.T) {
	srv := newTestServer(t)
	const secretBody = "the launch code is 0000"
	note := srv.createNote(t, clientA, "title", secretBody)
	srv.logs.Reset()

	rec := srv.send(t, clientA, http.MethodGet, notePath(note.ID), "")
	checkStatus(t, rec, http.StatusOK)

	records := srv.logRecordsWith(t, slog.LevelInfo, "request")
	if len(records) != 1 {
		t.Fatalf("access log lines: got %d, want 1; log:\n%s", len(records), srv.logs)
	}
	record := records[0]
	wantFields := map[string]any{
		"method":          "GET",
		"route":           "/v1/notes/{id}",
		"status":          float64(http.StatusOK),
		"bytes":           float64(rec.Body.Len()),
		"client_identity": clientA,
		"request_id":      rec.Header().Get(RequestIDHeader),
	}
	for key, want := range wantFields {
		if got := record[key]; got != want {
			t.Errorf("%s: got %v, want %v", key, got, want)
		}
	}
	if _, ok := record["duration"]; !ok {
		t.Errorf("duration: got none, want a duration")
	}
	if log := srv.logs.String(); strings.Contains(log, secretBody) || strings.Contains(log, note.ID.String()) {
		t.Errorf("log: got %s, want neither the body nor the raw path", log)
	}
}

func TestAccessLogUnmatchedRoute(t *testing.T) {
	srv := newTestServer(t)

	srv.send(t, clientA, http.MethodGet, "/admin/../etc/passwd", "")

	records := srv.logRecordsWith(t, slog.LevelInfo, "request")
	if len(records) != 1 {
		t.Fatalf("access log lines: got %d, want 1", len(records))
	}
	if got := records[0]["route"]; got != unmatchedRoute {
		t.Errorf("route: got %v, want %q", got, unmatchedRoute)
	}
}

func TestRequestIDIsServerMade(t *testing.T) {
	srv := newTestServer(t)
	req := authenticate(t, newRequest(http.MethodGet, "/v1/notes", ""), clientA)
	req.Header.Set(RequestIDHeader, "chosen-by-client")

	first := srv.serve(req).Header().Get(RequestIDHeader)
	second := srv.send(t, clientA, http.MethodGet, "/v1/notes", "").Header().Get(RequestIDHeader)

	if _, err := uuid.Parse(first); err != nil {
		t.Errorf("request id: got %q, want a UUID", first)
	}
	if first == second {
		t.Errorf("request ids of two requests: got %q twice, want different ids", first)
	}
}

func TestPanicRecovery(t *testing.T) {
	srv := newTestServerWithStore(t, panickingStore{Store: newFakeStore(), value: "store exploded"})

	rec := srv.send(t, clientA, http.MethodGet, "/v1/notes", "")

	problem := checkProblem(t, rec, http.StatusInternalServerError, ProblemInternal)
	if problem.Detail != internalDetail {
		t.Errorf("detail: got %q, want %q", problem.Detail, internalDetail)
	}
	records := srv.logRecordsWith(t, slog.LevelError, "request failed")
	if len(records) != 1 {
		t.Fatalf("Error log lines: got %d, want 1; log:\n%s", len(records), srv.logs)
	}
	if got, _ := records[0]["error"].(string); !strings.Contains(got, "panic: store exploded") {
		t.Errorf("error: got %q, want the panic value", got)
	}
	access := srv.logRecordsWith(t, slog.LevelInfo, "request")
	if len(access) != 1 || access[0]["status"] != float64(http.StatusInternalServerError) {
		t.Errorf("access log: got %v, want one line with status 500", access)
	}
}

func TestPanicAbortHandlerPassesThrough(t *testing.T) {
	srv := newTestServerWithStore(t, panickingStore{Store: newFakeStore(), value: http.ErrAbortHandler})
	req := authenticate(t, newRequest(http.MethodGet, "/v1/notes", ""), clientA)

	defer func() {
		if got := recover(); got != http.ErrAbortHandler {
			t.Errorf("panic: got %v, want http.ErrAbortHandler", got)
		}
	}()
	srv.serve(req)
}

func TestMetricsCountRequests(t *testing.T) {
	srv := newTestServer(t)
	note := srv.createNote(t, clientA, "title", "body")
	srv.send(t, clientA, http.MethodGet, notePath(note.ID), "")
	srv.send(t, clientA, http.MethodGet, notePath(note.ID), "")
	srv.send(t, clientA, http.MethodGet, "/nowhere", "")
	srv.send(t, clientA, "BREW", "/v1/notes", "")

	tests := []struct {
		labels map[string]string
		want   float64
	}{
		{map[string]string{"route": "/v1/notes", "method": "POST", "status": "201"}, 1},
		{map[string]string{"route": "/v1/notes/{id}", "method": "GET", "status": "200"}, 2},
		{map[string]string{"route": unmatchedRoute, "method": "GET", "status": "404"}, 1},
		{map[string]string{"route": unmatchedRoute, "method": "OTHER", "status": "405"}, 1},
	}
	for _, tc := range tests {
		if got := counterValue(t, srv.registry, "rotor_http_requests_total", tc.labels); got != tc.want {
			t.Errorf("rotor_http_requests_total%v: got %v, want %v", tc.labels, got, tc.want)
		}
	}
}

func TestStoreUnavailable(t *testing.T) {
	srv := newTestServer(t)
	srv.store.failWith(fmt.Errorf("create note: %w: connection refused", notes.ErrUnavailable))

	rec := srv.send(t, clientA, http.MethodPost, "/v1/notes", `{"title":"t","body":"b"}`)

	problem := checkProblem(t, rec, http.StatusServiceUnavailable, ProblemUnavailable)
	if problem.Detail != unavailableDetail {
		t.Errorf("detail: got %q, want %q", problem.Detail, unavailableDetail)
	}
	if got := rec.Header().Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After: got %q, want 1", got)
	}
	if strings.Contains(rec.Body.String(), "connection refused") {
		t.Errorf("body: got %s, want no trace of the store error", rec.Body)
	}
}
