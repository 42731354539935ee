package handlers

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestParseAllowList(t *testing.T) {
	tests := []struct {
		name       string
		list       string
		wantString string
		allowed    []string
		denied     []string
	}{
		{
			name:    "empty allows every identity",
			list:    "",
			allowed: []string{clientA, "anything"},
		},
		{
			name:       "exact entries",
			list:       " spiffe://rotor.test/client-a , spiffe://rotor.test/reports,",
			wantString: "spiffe://rotor.test/client-a,spiffe://rotor.test/reports",
			allowed:    []string{clientA, "spiffe://rotor.test/reports"},
			denied:     []string{clientB, "spiffe://rotor.test/client-a/extra", "SPIFFE://rotor.test/client-a", ""},
		},
		{
			name:       "prefix entry",
			list:       "spiffe://rotor.test/team/*",
			wantString: "spiffe://rotor.test/team/*",
			allowed:    []string{"spiffe://rotor.test/team/alice", "spiffe://rotor.test/team/ops/bob", "spiffe://rotor.test/team/"},
			denied:     []string{"spiffe://rotor.test/team", "spiffe://rotor.test/teams/x", clientA},
		},
		{
			name:       "lone star allows every identity",
			list:       "*",
			wantString: "*",
			allowed:    []string{clientA, "reports.example"},
			denied:     []string{""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list, err := ParseAllowList(tt.list)
			if err != nil {
				t.Fatalf("ParseAllowList(%q): %v", tt.list, err)
			}

			if got := list.String(); got != tt.wantString {
				t.Errorf("String: got %q, want %q", got, tt.wantString)
			}
			for _, identity := range tt.allowed {
				if !list.Allows(identity) {
					t.Errorf("Allows(%q): got false, want true", identity)
				}
			}
			for _, identity := range tt.denied {
				if list.Allows(identity) {
					t.Errorf("Allows(%q): got true, want false", identity)
				}
			}
		})
	}
}

func TestParseAllowListRejectsInvalidEntries(t *testing.T) {
	tests := []struct {
		list      string
		wantError string
	}{
		{"spiffe://rotor.test/*/reports", `"*" may only end an entry`},
		{"spiffe://rotor.test/client a", "no spaces or control characters"},
		{"ok.example,bad\tname", "no spaces or control characters"},
	}
	for _, tt := range tests {
		t.Run(tt.list, func(t *testing.T) {
			_, err := ParseAllowList(tt.list)

			if err == nil || !strings.Contains(err.Error(), tt.wantError) {
				t.Errorf("ParseAllowList(%q): got error %v, want one containing %q", tt.list, err, tt.wantError)
			}
		})
	}
}

// newTestServerAllowing is newTestServer with the allow-list parsed from
// list.
func newTestServerAllowing(tb testing.TB, list string) *testServer {
	tb.Helper()

	allowed, err := ParseAllowList(list)
	if err != nil {
		tb.Fatalf("ParseAllowList(%q): %v", list, err)
	}
	srv := &testServer{store: newFakeStore(), registry: prometheus.NewRegistry(), logs: &bytes.Buffer{}}
	srv.handler = New(Config{
		Store:          srv.store,
		Logger:         slog.New(slog.NewJSONHandler(srv.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer:     srv.registry,
		AllowedClients: allowed,
	})
	return srv
}

func TestAllowedClientsRejectsOthers(t *testing.T) {
	srv := newTestServerAllowing(t, clientA)

	rec := srv.send(t, clientB, http.MethodGet, "/v1/notes", "")

	problem := checkProblem(t, rec, http.StatusForbidden, ProblemForbidden)
	if !strings.Contains(problem.Detail, clientB) {
		t.Errorf("detail: got %q, want it to name %q", problem.Detail, clientB)
	}
	records := srv.logRecordsWith(t, slog.LevelWarn, "client identity not allowed")
	if len(records) != 1 {
		t.Fatalf("Warn lines: got %d, want 1; log:\n%s", len(records), srv.logs)
	}
	wantFields := map[string]any{
		"client_identity": clientB,
		"request_id":      rec.Header().Get(RequestIDHeader),
		"method":          "GET",
		"route":           "/v1/notes",
	}
	for key, want := range wantFields {
		if got := records[0][key]; got != want {
			t.Errorf("%s: got %v, want %v", key, got, want)
		}
	}
	if got := len(srv.store.byOwner[clientB]); got != 0 {
		t.Errorf("notes stored for %s: got %d, want 0", clientB, got)
	}
}

func TestAllowedClientsAdmitsListed(t *testing.T) {
	srv := newTestServerAllowing(t, "spiffe://rotor.test/*")

	rec := srv.send(t, clientA, http.MethodPost, "/v1/notes", `{"title":"allowed"}`)

	checkStatus(t, rec, http.StatusCreated)
	if got := len(srv.logRecordsWith(t, slog.LevelWarn, "client identity not allowed")); got != 0 {
		t.Errorf("Warn lines: got %d, want 0", got)
	}
}

func TestAllowedClientsChecksEveryRoute(t *testing.T) {
	srv := newTestServerAllowing(t, clientA)
	note := srv.createNote(t, clientA, "title", "body")

	routes := []struct{ method, target, body string }{
		{http.MethodPost, "/v1/notes", `{"title":"x"}`},
		{http.MethodGet, "/v1/notes", ""},
		{http.MethodGet, notePath(note.ID), ""},
		{http.MethodPatch, notePath(note.ID), `{"title":"x"}`},
		{http.MethodDelete, notePath(note.ID), ""},
	}
	for _, route := range routes {
		t.Run(route.method+" "+route.target, func(t *testing.T) {
			rec := srv.send(t, clientB, route.method, route.target, route.body)

			checkProblem(t, rec, http.StatusForbidden, ProblemForbidden)
		})
	}
}
