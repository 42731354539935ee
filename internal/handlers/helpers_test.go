package handlers

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"maps"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"example.com/rotor/internal/notes"
)

// Client identities as URI SANs, the form that tlsx.ClientIdentity prefers.
const (
	clientA = "spiffe://rotor.test/client-a"
	clientB = "spiffe://rotor.test/client-b"
)

// testServer is the handler of New with a fake store, a private metrics
// registry and a log that records every level as JSON lines.
type testServer struct {
	handler  http.Handler
	store    *fakeStore
	registry *prometheus.Registry
	logs     *bytes.Buffer
}

func newTestServer(tb testing.TB) *testServer {
	tb.Helper()
	return newTestServerWithStore(tb, newFakeStore())
}

// newTestServerWithStore serves store. The store field of the result is nil
// unless store is a *fakeStore.
func newTestServerWithStore(tb testing.TB, store notes.Store) *testServer {
	tb.Helper()
	logs := &bytes.Buffer{}
	registry := prometheus.NewRegistry()
	handler := New(Config{
		Store:      store,
		Logger:     slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: registry,
	})
	fake, _ := store.(*fakeStore)
	return &testServer{handler: handler, store: fake, registry: registry, logs: logs}
}

// serve runs req through the handler and returns the recorded response.
func (s *testServer) serve(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, req)
	return rec
}

// send serves a request from the client with the identity. A non-empty body
// is sent as application/json.
func (s *testServer) send(tb testing.TB, identity, method, target, body string) *httptest.ResponseRecorder {
	tb.Helper()
	return s.serve(authenticate(tb, newRequest(method, target, body), identity))
}

// newRequest returns a request without TLS state. A non-empty body is sent
// as application/json.
func newRequest(method, target, body string) *http.Request {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// authenticate makes req arrive over TLS with a verified client certificate
// that names identity in a URI SAN.
func authenticate(tb testing.TB, req *http.Request, identity string) *http.Request {
	tb.Helper()
	uri, err := url.Parse(identity)
	if err != nil {
		tb.Fatalf("parse identity %q: %v", identity, err)
	}
	cert := newCertificate(tb, &x509.Certificate{URIs: []*url.URL{uri}}).Leaf
	req.TLS = &tls.ConnectionState{
		PeerCertificates: []*x509.Certificate{cert},
		VerifiedChains:   [][]*x509.Certificate{{cert}},
	}
	return req
}

// newCertificate returns a self-signed client certificate with the SANs and
// subject of template, and its key. Leaf is set.
func newCertificate(tb testing.TB, template *x509.Certificate) tls.Certificate {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("generate key: %v", err)
	}

	template.SerialNumber = big.NewInt(1)
	template.NotBefore = time.Now().Add(-time.Minute)
	template.NotAfter = time.Now().Add(time.Hour)
	template.KeyUsage = x509.KeyUsageDigitalSignature
	template.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		tb.Fatalf("create certificate: %v", err)
	}

	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("parse certificate: %v", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// createNote creates a note for identity and returns it.
func (s *testServer) createNote(tb testing.TB, identity, title, body string) noteJSON {
	tb.Helper()
	payload, err := json.Marshal(createRequest{Title: title, Body: body})
	if err != nil {
		tb.Fatalf("encode note: %v", err)
	}
	rec := s.send(tb, identity, http.MethodPost, "/v1/notes", string(payload))
	checkStatus(tb, rec, http.StatusCreated)
	return decodeJSONBody[noteJSON](tb, rec)
}

func notePath(id uuid.UUID) string {
	return "/v1/notes/" + id.String()
}

func checkStatus(tb testing.TB, rec *httptest.ResponseRecorder, want int) {
	tb.Helper()
	if rec.Code != want {
		tb.Fatalf("status: got %d, want %d; body: %s", rec.Code, want, rec.Body)
	}
}

// decodeJSONBody checks that the response is JSON and decodes it.
func decodeJSONBody[T any](tb testing.TB, rec *httptest.ResponseRecorder) T {
	tb.Helper()
	if got := rec.Header().Get("Content-Type"); got != "application/json" {
		tb.Errorf("Content-Type: got %q, want %q", got, "application/json")
	}
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		tb.Fatalf("decode body %s: %v", rec.Body, err)
	}
	return v
}

// checkProblem checks that the response is a problem of the status and type
// that carries the request id of the response header, and returns it.
func checkProblem(tb testing.TB, rec *httptest.ResponseRecorder, wantStatus int, wantType string) problemBody {
	tb.Helper()
	checkStatus(tb, rec, wantStatus)
	if got := rec.Header().Get("Content-Type"); got != "application/problem+json" {
		tb.Errorf("Content-Type: got %q, want %q", got, "application/problem+json")
	}

	var problem problemBody
	if err := json.Unmarshal(rec.Body.Bytes(), &problem); err != nil {
		tb.Fatalf("decode problem %s: %v", rec.Body, err)
	}
	if problem.Type != wantType {
		tb.Errorf("problem type: got %q, want %q", problem.Type, wantType)
	}
	if problem.Status != wantStatus {
		tb.Errorf("problem status: got %d, want %d", problem.Status, wantStatus)
	}
	if problem.Title == "" {
		tb.Errorf("problem title: got empty, want a title")
	}
	if want := rec.Header().Get(RequestIDHeader); problem.RequestID != want || want == "" {
		tb.Errorf("problem request_id: got %q, want the %s header %q", problem.RequestID, RequestIDHeader, want)
	}
	return problem
}

// logRecord is one decoded line of the JSON log.
type logRecord map[string]any

// logRecords decodes every line of the log.
func (s *testServer) logRecords(tb testing.TB) []logRecord {
	tb.Helper()
	var records []logRecord
	scanner := bufio.NewScanner(bytes.NewReader(s.logs.Bytes()))
	for scanner.Scan() {
		var record logRecord
		if err := json.Unmarshal(scanner.Bytes(), &record); err != nil {
			tb.Fatalf("decode log line %s: %v", scanner.Bytes(), err)
		}
		records = append(records, record)
	}
	if err := scanner.Err(); err != nil {
		tb.Fatalf("read log: %v", err)
	}
	return records
}

// logRecordsWith returns the records whose level and message match.
func (s *testServer) logRecordsWith(tb testing.TB, level slog.Level, msg string) []logRecord {
	tb.Helper()
	var matched []logRecord
	for _, record := range s.logRecords(tb) {
		if record[slog.LevelKey] == level.String() && record[slog.MessageKey] == msg {
			matched = append(matched, record)
		}
	}
	return matched
}

// counterValue returns the value of the counter with exactly the labels,
// or 0 when the registry has no such series.
func counterValue(tb testing.TB, registry prometheus.Gatherer, name string, labels map[string]string) float64 {
	tb.Helper()
	families, err := registry.Gather()
	if err != nil {
		tb.Fatalf("gather metrics: %v", err)
	}
	for _, family := range families {
		if family.GetName() != name {
			continue
		}
		for _, metric := range family.GetMetric() {
			got := make(map[string]string)
			for _, pair := range metric.GetLabel() {
				got[pair.GetName()] = pair.GetValue()
			}
			if maps.Equal(got, labels) {
				return metric.GetCounter().GetValue()
			}
		}
	}
	return 0
}
