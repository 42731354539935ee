package handlers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// getAdmin serves GET target with handler.
func getAdmin(handler http.Handler, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return rec
}

func checkText(tb testing.TB, rec *httptest.ResponseRecorder, wantStatus int, wantBody string) {
	tb.Helper()
	checkStatus(tb, rec, wantStatus)
	if got := rec.Body.String(); got != wantBody {
		tb.Errorf("body: got %q, want %q", got, wantBody)
	}
	if got, want := rec.Header().Get("Content-Type"), "text/plain; charset=utf-8"; got != want {
		tb.Errorf("Content-Type: got %q, want %q", got, want)
	}
}

func TestHealthz(t *testing.T) {
	admin := NewAdmin(AdminConfig{
		Ready:    func(context.Context) error { return errors.New("database unreachable") },
		Gatherer: prometheus.NewRegistry(),
	})

	// Liveness does not depend on readiness.
	checkText(t, getAdmin(admin, "/healthz"), http.StatusOK, "ok")
}

func TestReadyz(t *testing.T) {
	tests := []struct {
		name       string
		ready      func(context.Context) error
		wantStatus int
		wantBody   string
	}{
		{"ready", func(context.Context) error { return nil }, http.StatusOK, "ready"},
		{"nil check", nil, http.StatusOK, "ready"},
		{"not ready", func(context.Context) error { return errors.New("database unreachable") },
			http.StatusServiceUnavailable, "not ready: database unreachable"},
		{"check times out", func(ctx context.Context) error {
			<-ctx.Done()
			return ctx.Err()
		}, http.StatusServiceUnavailable, "not ready: context deadline exceeded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			admin := NewAdmin(AdminConfig{
				Ready:        tc.ready,
				ReadyTimeout: 50 * time.Millisecond,
				Gatherer:     prometheus.NewRegistry(),
			})

			checkText(t, getAdmin(admin, "/readyz"), tc.wantStatus, tc.wantBody)
		})
	}
}

func TestReadyzDefaultTimeout(t *testing.T) {
	var deadline time.Time
	admin := NewAdmin(AdminConfig{
		Ready: func(ctx context.Context) error {
			deadline, _ = ctx.Deadline()
			return nil
		},
		Gatherer: prometheus.NewRegistry(),
	})

	start := time.Now()
	getAdmin(admin, "/readyz")
	end := time.Now()

	earliest, latest := start.Add(DefaultReadyTimeout), end.Add(DefaultReadyTimeout)
	if deadline.Before(earliest) || deadline.After(latest) {
		t.Errorf("deadline: got %v, want from %v to %v", deadline, earliest, latest)
	}
}

func TestReadyzLogsChangesOnly(t *testing.T) {
	var logs bytes.Buffer
	var failure error
	admin := NewAdmin(AdminConfig{
		Ready:    func(context.Context) error { return failure },
		Gatherer: prometheus.NewRegistry(),
		Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
	})

	getAdmin(admin, "/readyz")
	failure = errors.New("database unreachable")
	getAdmin(admin, "/readyz")
	getAdmin(admin, "/readyz")
	failure = nil
	getAdmin(admin, "/readyz")

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("log lines: got %d, want 2; log:\n%s", len(lines), logs.String())
	}
	if !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "database unreachable") {
		t.Errorf("first line: got %q, want a warning with the error", lines[0])
	}
	if !strings.Contains(lines[1], "level=INFO") || !strings.Contains(lines[1], "passed again") {
		t.Errorf("second line: got %q, want an info line on recovery", lines[1])
	}
}

func TestMetricsEndpoint(t *testing.T) {
	srv := newTestServer(t)
	srv.createNote(t, clientA, "title", "body")
	admin := NewAdmin(AdminConfig{Gatherer: srv.registry})

	rec := getAdmin(admin, "/metrics")

	checkStatus(t, rec, http.StatusOK)
	body, err := io.ReadAll(rec.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	want := `rotor_http_requests_total{method="POST",route="/v1/notes",status="201"} 1`
	if !strings.Contains(string(body), want) {
		t.Errorf("metrics: got\n%s\nwant a line %q", body, want)
	}
	if !strings.Contains(string(body), `rotor_http_request_duration_seconds_count{route="/v1/notes"} 1`) {
		t.Errorf("metrics: got\n%s\nwant the duration histogram of /v1/notes", body)
	}
}

func TestNewPanicsWithoutStore(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Errorf("New with a nil Store: got no panic, want one")
		}
	}()
	New(Config{Registerer: prometheus.NewRegistry()})
}
