package loadgen_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"example.com/rotor/internal/loadgen"
	"example.com/rotor/internal/tlsx/tlsxtest"
)

// fakeAPI is an in-memory notes API served over mutual TLS. Its fault hook
// lets a test replace the response to chosen requests.
type fakeAPI struct {
	URL    string
	Client *http.Client // presents a client certificate that the server trusts
	CA     *tlsxtest.CA

	// fault, when set, runs before the API with the request's 1-based
	// arrival number and returns true when it has written the response.
	fault func(w http.ResponseWriter, r *http.Request, arrival int64) bool

	arrivalCount atomic.Int64

	mu       sync.Mutex // guards the fields below
	notes    map[string]loadgen.Note
	nextID   int
	arrivals []time.Time
}

// startFakeAPI starts the API with an HTTPS server that requires a client
// certificate from its CA, and a client made by loadgen.NewClient from a
// certificate directory. The server stops in t.Cleanup.
func startFakeAPI(t testing.TB) *fakeAPI {
	t.Helper()

	api := &fakeAPI{notes: make(map[string]loadgen.Note), CA: tlsxtest.NewCA(t, "fake API CA")}

	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/notes", api.create)
	mux.HandleFunc("GET /v1/notes", api.list)
	mux.HandleFunc("GET /v1/notes/{id}", api.get)
	mux.HandleFunc("PATCH /v1/notes/{id}", api.patch)

	server := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrival := api.recordArrival()
		if len(r.TLS.VerifiedChains) == 0 {
			http.Error(w, "no verified client certificate", http.StatusUnauthorized)
			return
		}
		if api.fault != nil && api.fault(w, r, arrival) {
			return
		}
		mux.ServeHTTP(w, r)
	}))
	// Some tests expect failed handshakes, so the server's log is discarded.
	// The tests check the client's counts instead.
	server.Config.ErrorLog = log.New(io.Discard, "", 0)
	server.EnableHTTP2 = true
	server.TLS = &tls.Config{
		Certificates: []tls.Certificate{api.CA.IssueServer(t, "127.0.0.1").TLSCertificate()},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    api.CA.Pool(),
	}
	server.StartTLS()
	t.Cleanup(server.Close)
	api.URL = server.URL

	clientPair := api.CA.Issue(t, tlsxtest.Leaf{
		URIs:        []string{"spiffe://rotor.test/client/loadgen"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	certDir := filepath.Join(t.TempDir(), "client")
	tlsxtest.WriteSecretDir(t, certDir, clientPair, api.CA)
	client, err := loadgen.NewClient(certDir, 8)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	t.Cleanup(client.CloseIdleConnections)
	api.Client = client
	return api
}

func (api *fakeAPI) recordArrival() int64 {
	api.mu.Lock()
	api.arrivals = append(api.arrivals, time.Now())
	api.mu.Unlock()
	return api.arrivalCount.Add(1)
}

// Arrivals returns the arrival time of every request, earliest first.
func (api *fakeAPI) Arrivals() []time.Time {
	api.mu.Lock()
	defer api.mu.Unlock()

	arrivals := slices.Clone(api.arrivals)
	slices.SortFunc(arrivals, time.Time.Compare)
	return arrivals
}

// Len returns the number of stored notes.
func (api *fakeAPI) Len() int {
	api.mu.Lock()
	defer api.mu.Unlock()
	return len(api.notes)
}

// Delete removes a note, as a store that lost it would.
func (api *fakeAPI) Delete(id string) {
	api.mu.Lock()
	defer api.mu.Unlock()
	delete(api.notes, id)
}

// SetBody changes the body of a note behind the client's back.
func (api *fakeAPI) SetBody(id, body string) {
	api.mu.Lock()
	defer api.mu.Unlock()
	note := api.notes[id]
	note.Body = body
	api.notes[id] = note
}

func (api *fakeAPI) create(w http.ResponseWriter, r *http.Request) {
	var req struct{ Title, Body string }
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}

	api.mu.Lock()
	api.nextID++
	note := loadgen.Note{ID: fmt.Sprintf("note-%d", api.nextID), Title: req.Title, Body: req.Body}
	api.notes[note.ID] = note
	api.mu.Unlock()

	writeJSON(w, http.StatusCreated, note)
}

func (api *fakeAPI) list(w http.ResponseWriter, r *http.Request) {
	api.mu.Lock()
	items := make([]loadgen.Note, 0, len(api.notes))
	for _, note := range api.notes {
		items = append(items, note)
	}
	api.mu.Unlock()

	writeJSON(w, http.StatusOK, map[string]any{"items": items[:min(len(items), 20)]})
}

func (api *fakeAPI) get(w http.ResponseWriter, r *http.Request) {
	api.mu.Lock()
	note, ok := api.notes[r.PathValue("id")]
	api.mu.Unlock()

	if !ok {
		http.Error(w, "note not found", http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, note)
}

func (api *fakeAPI) patch(w http.ResponseWriter, r *http.Request) {
	var req struct{ Body *string }
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Body == nil {
		http.Error(w, "want a JSON object with a body member", http.StatusBadRequest)
		return
	}

	api.mu.Lock()
	note, ok := api.notes[r.PathValue("id")]
	if ok {
		note.Body = *req.Body
		api.notes[note.ID] = note
	}
	api.mu.Unlock()

	if !ok {
		http.Error(w, "note not found", http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, note)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
