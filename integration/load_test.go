package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// load sends a steady mix of reads and writes until stopped, and keeps every
// write the server acknowledged so that the test can check none was lost.
type load struct {
	client  *http.Client
	baseURL string

	requests atomic.Int64

	// mu guards acked and failures.
	mu       sync.Mutex
	acked    map[string]note
	failures []string

	stop context.CancelFunc
	done sync.WaitGroup
}

// startLoad sends about rate requests per second, 40% creates and 60% reads
// of notes created earlier, from workers goroutines, until Stop. Every loop
// ends when Stop is called or the test's deadline comes.
func startLoad(t *testing.T, client *http.Client, baseURL string, rate, workers int) *load {
	t.Helper()

	ctx, cancel := context.WithCancel(t.Context())
	l := &load{client: client, baseURL: baseURL, acked: make(map[string]note), stop: cancel}
	interval := time.Duration(workers) * time.Second / time.Duration(rate)

	for w := range workers {
		l.done.Go(func() {
			ticker := time.NewTicker(interval)
			defer ticker.Stop()
			for i := 0; ; i++ {
				select {
				case <-ctx.Done():
					return
				case <-ticker.C:
				}
				l.one(ctx, fmt.Sprintf("w%d-%d", w, i))
			}
		})
	}
	t.Cleanup(l.Stop)
	return l
}

// Stop ends the load and waits for the requests in flight.
func (l *load) Stop() {
	l.stop()
	l.done.Wait()
}

func (l *load) one(ctx context.Context, name string) {
	l.requests.Add(1)
	if id, ok := l.randomAcked(); ok && rand.IntN(10) < 6 {
		l.read(ctx, id)
		return
	}
	l.create(ctx, name)
}

func (l *load) create(ctx context.Context, name string) {
	payload, _ := json.Marshal(map[string]string{"title": name, "body": "body of " + name})
	req, _ := http.NewRequestWithContext(ctx, "POST", l.baseURL+"/v1/notes", bytes.NewReader(payload))
	req.Header.Set("Content-Type", "application/json")

	resp, err := l.client.Do(req)
	if err != nil {
		l.fail(ctx, "create %s: %v", name, err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		l.fail(ctx, "create %s: status %d: %s", name, resp.StatusCode, body)
		return
	}

	var got note
	if err := json.Unmarshal(body, &got); err != nil {
		l.fail(ctx, "create %s: decode: %v", name, err)
		return
	}
	l.mu.Lock()
	l.acked[got.ID] = got
	l.mu.Unlock()
}

func (l *load) read(ctx context.Context, id string) {
	req, _ := http.NewRequestWithContext(ctx, "GET", l.baseURL+"/v1/notes/"+id, nil)
	resp, err := l.client.Do(req)
	if err != nil {
		l.fail(ctx, "get %s: %v", id, err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		l.fail(ctx, "get %s: status %d: %s", id, resp.StatusCode, body)
	}
}

func (l *load) randomAcked() (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id := range l.acked {
		return id, true
	}
	return "", false
}

// fail records a failed request, unless the load was being stopped.
func (l *load) fail(ctx context.Context, format string, args ...any) {
	if ctx.Err() != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures = append(l.failures, time.Now().Format("15:04:05.000")+" "+fmt.Sprintf(format, args...))
}

// Failures returns the failed requests so far.
func (l *load) Failures() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.failures...)
}

// Acked returns the number of acknowledged writes.
func (l *load) Acked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// checkAckedWritesReadable reads back every acknowledged write through the
// API and fails the test for each one that is missing or different.
func (l *load) checkAckedWritesReadable(t *testing.T) {
	t.Helper()

	l.mu.Lock()
	acked := make([]note, 0, len(l.acked))
	for _, n := range l.acked {
		acked = append(acked, n)
	}
	l.mu.Unlock()

	lost := 0
	for _, want := range acked {
		status, _, body := do(t, l.client, "GET", l.baseURL+"/v1/notes/"+want.ID, "", nil)
		if status != http.StatusOK {
			lost++
			t.Errorf("acknowledged note %s: got status %d, want 200: %s", want.ID, status, body)
			continue
		}
		if got := decode[note](t, body); got != want {
			lost++
			t.Errorf("acknowledged note %s: got %+v, want %+v", want.ID, got, want)
		}
	}
	t.Logf("%d acknowledged writes read back, %d lost", len(acked), lost)
}

// requireNoFailures fails the test with the first failed requests.
func (l *load) requireNoFailures(t *testing.T) {
	t.Helper()

	failures := l.Failures()
	t.Logf("%d requests sent, %d failed, %d writes acknowledged", l.requests.Load(), len(failures), l.Acked())
	for i, f := range failures {
		if i == 10 {
			t.Errorf("... and %d more", len(failures)-10)
			break
		}
		t.Errorf("failed request: %s", f)
	}
}
