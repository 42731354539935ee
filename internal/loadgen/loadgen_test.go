package loadgen_test

import (
	"context"
	"errors"
	"maps"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"example.com/rotor/internal/loadgen"
	"example.com/rotor/internal/tlsx/tlsxtest"
)

// mixedConfig returns a config for a short, fast run of every operation
// against api.
func mixedConfig(api *fakeAPI, requests int) loadgen.Config {
	return loadgen.Config{
		BaseURL:     api.URL,
		Client:      api.Client,
		Rate:        2000,
		Requests:    requests,
		Concurrency: 8,
		WriteRatio:  0.4,
		PatchRatio:  0.4,
		ListRatio:   0.2,
		Seed:        1,
	}
}

// closedLoopConfig returns a config for a closed loop of the mixed workload
// against api, with the given number of workers.
func closedLoopConfig(api *fakeAPI, workers int, duration time.Duration) loadgen.Config {
	cfg := mixedConfig(api, 0)
	cfg.Rate = 0
	cfg.Concurrency = workers
	cfg.Duration = duration
	return cfg
}

// run calls loadgen.Run and fails the test on an error.
func run(t *testing.T, cfg loadgen.Config) loadgen.Result {
	t.Helper()

	result, err := loadgen.Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return result
}

func TestRunMixedWorkload(t *testing.T) {
	api := startFakeAPI(t)

	result := run(t, mixedConfig(api, 300))

	if result.Requests != 300 {
		t.Errorf("got %d requests, want 300", result.Requests)
	}
	if result.Failed() != 0 {
		t.Errorf("got %d failed requests, want none: %v: %q", result.Failed(), result.Failures, result.FailureExamples)
	}
	sum := 0
	for _, op := range []loadgen.Operation{loadgen.OpCreate, loadgen.OpPatch, loadgen.OpGet, loadgen.OpList} {
		if result.Operations[op] == 0 {
			t.Errorf("got no %s requests, want some: %v", op, result.Operations)
		}
		sum += result.Operations[op]
	}
	if sum != result.Requests {
		t.Errorf("operations add up to %d, want %d: %v", sum, result.Requests, result.Operations)
	}

	if got, want := len(result.Notes), result.Operations[loadgen.OpCreate]; got != want {
		t.Errorf("got %d acknowledged notes, want %d, one per create", got, want)
	}
	if got, want := api.Len(), len(result.Notes); got != want {
		t.Errorf("the API stores %d notes, want %d", got, want)
	}
	if result.UncertainNotes != 0 {
		t.Errorf("got %d uncertain notes, want none", result.UncertainNotes)
	}
	if err := loadgen.Verify(context.Background(), api.Client, api.URL, result.Notes); err != nil {
		t.Errorf("verify: %v", err)
	}

	if result.RequestsPerSecond <= 0 || result.Elapsed <= 0 {
		t.Errorf("got %v requests/s over %v, want both positive", result.RequestsPerSecond, result.Elapsed)
	}
	lat := result.Latency
	if !(0 < lat.P50 && lat.P50 <= lat.P90 && lat.P90 <= lat.P99 && lat.P99 <= lat.Max) {
		t.Errorf("got latency %+v, want 0 < P50 <= P90 <= P99 <= Max", lat)
	}
}

func TestRunStartsNoRequestBeforeItsSlot(t *testing.T) {
	api := startFakeAPI(t)
	const (
		rate     = 200
		requests = 40
		interval = time.Second / rate
	)
	cfg := mixedConfig(api, requests)
	cfg.Rate = rate

	begin := time.Now()
	result := run(t, cfg)

	// Request k of the schedule starts no earlier than begin + k*interval,
	// so the k-th arrival, counting from 0, cannot come earlier either.
	arrivals := api.Arrivals()
	if len(arrivals) != requests {
		t.Fatalf("the API received %d requests, want %d", len(arrivals), requests)
	}
	for k, arrival := range arrivals {
		if earliest := begin.Add(time.Duration(k) * interval); arrival.Before(earliest) {
			t.Errorf("request %d arrived %v after the start, want at least %v", k, arrival.Sub(begin), earliest.Sub(begin))
		}
	}

	// The last request starts at least (requests-1)*interval after the first.
	maxRate := float64(rate) * requests / (requests - 1)
	if result.RequestsPerSecond > maxRate {
		t.Errorf("got %.1f requests/s, want at most %.1f", result.RequestsPerSecond, maxRate)
	}
}

func TestRunStopsAtDuration(t *testing.T) {
	api := startFakeAPI(t)
	cfg := mixedConfig(api, 0)
	cfg.Rate = 100
	cfg.Duration = 300 * time.Millisecond

	result := run(t, cfg)

	// Requests start at 0, 10, ... 290 ms. The end, 300 ms, is excluded.
	if result.Requests != 30 {
		t.Errorf("got %d requests, want 30", result.Requests)
	}
	if got := len(api.Arrivals()); got != 30 {
		t.Errorf("the API received %d requests, want 30", got)
	}
}

func TestRunTinyRateStopsAtDuration(t *testing.T) {
	api := startFakeAPI(t)
	cfg := mixedConfig(api, 0)
	cfg.Rate = 1e-12
	cfg.Duration = 100 * time.Millisecond

	result := run(t, cfg)

	// Request 0 starts at once. Request 1 would start after some 30,000
	// years, beyond the range of time.Duration.
	if result.Requests != 1 {
		t.Errorf("got %d requests, want 1", result.Requests)
	}
}

func TestRunStopsAtRequestCount(t *testing.T) {
	api := startFakeAPI(t)
	cfg := mixedConfig(api, 25)
	cfg.Duration = time.Minute

	result := run(t, cfg)

	if result.Requests != 25 {
		t.Errorf("got %d requests, want 25", result.Requests)
	}
	if got := len(api.Arrivals()); got != 25 {
		t.Errorf("the API received %d requests, want 25", got)
	}
}

func TestRunClosedLoop(t *testing.T) {
	api := startFakeAPI(t)
	const duration = 300 * time.Millisecond
	cfg := closedLoopConfig(api, 4, duration)
	cfg.RequestTimeout = time.Second

	begin := time.Now()
	result := run(t, cfg)
	returned := time.Since(begin)

	if result.Requests == 0 || result.RequestsPerSecond <= 0 {
		t.Fatalf("got %d requests at %.1f requests/s, want both positive", result.Requests, result.RequestsPerSecond)
	}
	if result.Failed() != 0 {
		t.Errorf("got %d failed requests, want none: %v: %q", result.Failed(), result.Failures, result.FailureExamples)
	}
	if got := len(api.Arrivals()); got != result.Requests {
		t.Errorf("the API received %d requests, want %d, the number that the result counts", got, result.Requests)
	}
	// Requests start until the duration has passed, and those in flight
	// then end within RequestTimeout.
	if returned < duration || returned > duration+cfg.RequestTimeout {
		t.Errorf("Run returned after %v, want between %v and %v", returned, duration, duration+cfg.RequestTimeout)
	}
	if result.Elapsed < duration {
		t.Errorf("got elapsed %v, want at least the duration %v", result.Elapsed, duration)
	}

	for _, op := range []loadgen.Operation{loadgen.OpCreate, loadgen.OpPatch, loadgen.OpGet, loadgen.OpList} {
		if result.Operations[op] == 0 {
			t.Errorf("got no %s requests, want some: %v", op, result.Operations)
		}
	}
	if err := loadgen.Verify(context.Background(), api.Client, api.URL, result.Notes); err != nil {
		t.Errorf("verify: %v", err)
	}
	lat := result.Latency
	if !(0 < lat.P50 && lat.P50 <= lat.P90 && lat.P90 <= lat.P99 && lat.P99 <= lat.Max) {
		t.Errorf("got latency %+v, want 0 < P50 <= P90 <= P99 <= Max", lat)
	}
}

func TestRunClosedLoopWaitsForResponses(t *testing.T) {
	api := startFakeAPI(t)
	const (
		workers  = 4
		delay    = 20 * time.Millisecond
		duration = 300 * time.Millisecond
	)
	var (
		mu          sync.Mutex
		inFlight    int
		maxInFlight int
	)
	api.fault = func(w http.ResponseWriter, r *http.Request, _ int64) bool {
		mu.Lock()
		inFlight++
		maxInFlight = max(maxInFlight, inFlight)
		mu.Unlock()

		time.Sleep(delay)

		mu.Lock()
		inFlight--
		mu.Unlock()
		return false
	}

	result := run(t, closedLoopConfig(api, workers, duration))

	// Each worker waits at least delay for every response, so it starts at
	// most duration/delay requests, rounded up, before the duration ends.
	limit := workers * int((duration+delay-1)/delay)
	if result.Requests > limit {
		t.Errorf("got %d requests, want at most %d", result.Requests, limit)
	}
	if result.Requests <= workers {
		t.Errorf("got %d requests, want more than one per worker, %d", result.Requests, workers)
	}
	mu.Lock()
	defer mu.Unlock()
	if maxInFlight != workers {
		t.Errorf("the API had at most %d requests in flight, want %d, one per worker", maxInFlight, workers)
	}
}

func TestRunClosedLoopCountsFailures(t *testing.T) {
	api := startFakeAPI(t)
	api.fault = func(w http.ResponseWriter, r *http.Request, arrival int64) bool {
		if arrival%4 != 0 {
			return false
		}
		http.Error(w, "internal error", http.StatusInternalServerError)
		return true
	}

	result := run(t, closedLoopConfig(api, 4, 200*time.Millisecond))

	if result.Requests < 4 {
		t.Fatalf("got %d requests, want at least 4 so that one fails", result.Requests)
	}
	if got := len(api.Arrivals()); got != result.Requests {
		t.Errorf("the API received %d requests, want %d, the number that the result counts", got, result.Requests)
	}
	want := map[loadgen.FailureKind]int{loadgen.FailureServerError: result.Requests / 4}
	if !maps.Equal(result.Failures, want) {
		t.Errorf("got failures %v, want %v; examples: %q", result.Failures, want, result.FailureExamples)
	}
	if got, want := len(result.FailureExamples), min(result.Failed(), 10); got != want {
		t.Errorf("got %d failure examples, want %d", got, want)
	}
}

func TestRunClosedLoopStopsAtRequestCount(t *testing.T) {
	api := startFakeAPI(t)
	cfg := closedLoopConfig(api, 4, 0)
	cfg.Requests = 50

	result := run(t, cfg)

	if result.Requests != 50 {
		t.Errorf("got %d requests, want 50", result.Requests)
	}
	if got := len(api.Arrivals()); got != 50 {
		t.Errorf("the API received %d requests, want 50", got)
	}
}

func TestRunCountsFailuresByKind(t *testing.T) {
	const requests = 100
	isGetNote := func(r *http.Request) bool {
		return r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/notes/")
	}

	cases := []struct {
		name  string
		fault func(w http.ResponseWriter, r *http.Request, arrival int64) bool

		// requestTimeout is Config.RequestTimeout. Zero keeps the default.
		requestTimeout time.Duration

		// want returns the expected failures from the result, whose
		// operation counts depend on the random mix.
		want func(loadgen.Result) map[loadgen.FailureKind]int

		// needsGets marks cases that are vacuous without GET requests.
		needsGets bool
	}{
		{
			name: "service unavailable",
			fault: func(w http.ResponseWriter, r *http.Request, _ int64) bool {
				http.Error(w, "database unavailable", http.StatusServiceUnavailable)
				return true
			},
			want: func(loadgen.Result) map[loadgen.FailureKind]int {
				return map[loadgen.FailureKind]int{loadgen.FailureServerError: requests}
			},
		},
		{
			name: "every fourth request fails",
			fault: func(w http.ResponseWriter, r *http.Request, arrival int64) bool {
				if arrival%4 != 0 {
					return false
				}
				http.Error(w, "internal error", http.StatusInternalServerError)
				return true
			},
			want: func(loadgen.Result) map[loadgen.FailureKind]int {
				return map[loadgen.FailureKind]int{loadgen.FailureServerError: requests / 4}
			},
		},
		{
			name: "lost notes",
			fault: func(w http.ResponseWriter, r *http.Request, _ int64) bool {
				if !isGetNote(r) {
					return false
				}
				http.Error(w, "note not found", http.StatusNotFound)
				return true
			},
			want: func(res loadgen.Result) map[loadgen.FailureKind]int {
				return map[loadgen.FailureKind]int{loadgen.FailureUnexpectedStatus: res.Operations[loadgen.OpGet]}
			},
			needsGets: true,
		},
		{
			name: "stale content",
			fault: func(w http.ResponseWriter, r *http.Request, _ int64) bool {
				if !isGetNote(r) {
					return false
				}
				id := strings.TrimPrefix(r.URL.Path, "/v1/notes/")
				writeJSON(w, http.StatusOK, loadgen.Note{ID: id, Title: "old title", Body: "old body"})
				return true
			},
			want: func(res loadgen.Result) map[loadgen.FailureKind]int {
				return map[loadgen.FailureKind]int{loadgen.FailureBadResponse: res.Operations[loadgen.OpGet]}
			},
			needsGets: true,
		},
		{
			name: "malformed JSON",
			fault: func(w http.ResponseWriter, r *http.Request, _ int64) bool {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusOK)
				_, _ = w.Write([]byte(`{"items":`))
				return true
			},
			// POST expects 201, so its 200 is an unexpected status.
			want: func(res loadgen.Result) map[loadgen.FailureKind]int {
				return map[loadgen.FailureKind]int{
					loadgen.FailureUnexpectedStatus: res.Operations[loadgen.OpCreate],
					loadgen.FailureBadResponse:      requests - res.Operations[loadgen.OpCreate],
				}
			},
		},
		{
			name: "aborted responses",
			fault: func(w http.ResponseWriter, r *http.Request, _ int64) bool {
				panic(http.ErrAbortHandler)
			},
			want: func(loadgen.Result) map[loadgen.FailureKind]int {
				return map[loadgen.FailureKind]int{loadgen.FailureTransport: requests}
			},
		},
		{
			name: "hanging server",
			fault: func(w http.ResponseWriter, r *http.Request, _ int64) bool {
				select {
				case <-r.Context().Done():
				case <-time.After(10 * time.Second):
				}
				return true
			},
			requestTimeout: 100 * time.Millisecond,
			want: func(loadgen.Result) map[loadgen.FailureKind]int {
				return map[loadgen.FailureKind]int{loadgen.FailureTimeout: requests}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api := startFakeAPI(t)
			api.fault = tc.fault
			cfg := mixedConfig(api, requests)
			cfg.RequestTimeout = tc.requestTimeout

			result := run(t, cfg)

			if result.Requests != requests {
				t.Errorf("got %d requests, want %d", result.Requests, requests)
			}
			if tc.needsGets && result.Operations[loadgen.OpGet] == 0 {
				t.Fatalf("got no GET requests, want some: %v", result.Operations)
			}
			want := tc.want(result)
			maps.DeleteFunc(want, func(_ loadgen.FailureKind, n int) bool { return n == 0 })
			if !maps.Equal(result.Failures, want) {
				t.Errorf("got failures %v, want %v; examples: %q", result.Failures, want, result.FailureExamples)
			}
			if got, want := len(result.FailureExamples), min(result.Failed(), 10); got != want {
				t.Errorf("got %d failure examples, want %d", got, want)
			}
		})
	}
}

func TestRunSlowRequestsRaiseP99(t *testing.T) {
	api := startFakeAPI(t)
	const delay = 200 * time.Millisecond
	api.fault = func(w http.ResponseWriter, r *http.Request, arrival int64) bool {
		if arrival%10 == 0 {
			time.Sleep(delay)
		}
		return false
	}

	result := run(t, mixedConfig(api, 100))

	// Ten of the hundred requests take at least the delay, so the 99th
	// percentile and the maximum must reach it. The 90th need not.
	if result.Latency.P99 < delay || result.Latency.Max < delay {
		t.Errorf("got P99 %v and max %v, want both at least %v", result.Latency.P99, result.Latency.Max, delay)
	}
	if result.Failed() != 0 {
		t.Errorf("got %d failed requests, want none: %q", result.Failed(), result.FailureExamples)
	}
}

func TestRunPatchFailureMakesNoteUncertain(t *testing.T) {
	api := startFakeAPI(t)
	api.fault = func(w http.ResponseWriter, r *http.Request, _ int64) bool {
		if r.Method != http.MethodPatch {
			return false
		}
		http.Error(w, "internal error", http.StatusInternalServerError)
		return true
	}

	result := run(t, mixedConfig(api, 200))

	patches := result.Operations[loadgen.OpPatch]
	if patches == 0 {
		t.Fatalf("got no PATCH requests, want some: %v", result.Operations)
	}
	if got := result.Failures[loadgen.FailureServerError]; got != patches {
		t.Errorf("got %d server errors, want %d, one per PATCH", got, patches)
	}
	// A note leaves the ledger at its first failed PATCH, so no note is
	// patched twice.
	if result.UncertainNotes != patches {
		t.Errorf("got %d uncertain notes, want %d, one per PATCH", result.UncertainNotes, patches)
	}
	if got, want := len(result.Notes), result.Operations[loadgen.OpCreate]-patches; got != want {
		t.Errorf("got %d acknowledged notes, want %d", got, want)
	}
	if err := loadgen.Verify(context.Background(), api.Client, api.URL, result.Notes); err != nil {
		t.Errorf("verify: %v", err)
	}
}

func TestRunWithoutClientCertificateFails(t *testing.T) {
	api := startFakeAPI(t)
	cfg := mixedConfig(api, 10)
	cfg.Client = &http.Client{Transport: &http.Transport{TLSClientConfig: tlsxtest.ClientConfig(t, api.CA, nil)}}

	result := run(t, cfg)

	if got := result.Failures[loadgen.FailureTransport]; got != 10 {
		t.Errorf("got %d transport failures, want 10: %v", got, result.Failures)
	}
	if got := len(api.Arrivals()); got != 0 {
		t.Errorf("the API served %d requests, want none", got)
	}
}

func TestRunStopsWhenContextEnds(t *testing.T) {
	api := startFakeAPI(t)
	api.fault = func(w http.ResponseWriter, r *http.Request, _ int64) bool {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		return true
	}
	cfg := mixedConfig(api, 0)
	cfg.Rate = 100
	cfg.Duration = time.Minute

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	result, err := loadgen.Run(ctx, cfg)

	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got error %v, want context.DeadlineExceeded", err)
	}
	// Every request was in flight when the context ended, so none counts.
	if result.Requests != 0 || result.Failed() != 0 {
		t.Errorf("got %d requests and %d failures, want none of either", result.Requests, result.Failed())
	}
}

func TestRunRejectsInvalidConfig(t *testing.T) {
	api := startFakeAPI(t)
	valid := mixedConfig(api, 10)

	cases := []struct {
		name   string
		change func(*loadgen.Config)
		want   string
	}{
		{"no base URL", func(c *loadgen.Config) { c.BaseURL = "" }, "invalid BaseURL"},
		{"base URL without host", func(c *loadgen.Config) { c.BaseURL = "https:///v1" }, "invalid BaseURL"},
		{"no client", func(c *loadgen.Config) { c.Client = nil }, "missing Client"},
		{"negative rate", func(c *loadgen.Config) { c.Rate = -1 }, "invalid Rate"},
		{"infinite rate", func(c *loadgen.Config) { c.Rate = math.Inf(1) }, "invalid Rate"},
		{"NaN rate", func(c *loadgen.Config) { c.Rate = math.NaN() }, "invalid Rate"},
		{"no bound", func(c *loadgen.Config) { c.Requests, c.Duration = 0, 0 }, "missing bound"},
		{"negative duration", func(c *loadgen.Config) { c.Duration = -time.Second }, "invalid bounds"},
		{"negative concurrency", func(c *loadgen.Config) { c.Concurrency = -1 }, "invalid Concurrency"},
		{"write ratio above 1", func(c *loadgen.Config) { c.WriteRatio = 1.5 }, "invalid WriteRatio"},
		{"negative list ratio", func(c *loadgen.Config) { c.ListRatio = -0.1 }, "invalid ListRatio"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := valid
			tc.change(&cfg)

			_, err := loadgen.Run(context.Background(), cfg)

			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if got := len(api.Arrivals()); got != 0 {
		t.Errorf("the API received %d requests, want none", got)
	}
}

func TestVerifyReportsLostAndChangedNotes(t *testing.T) {
	api := startFakeAPI(t)
	cfg := mixedConfig(api, 10)
	cfg.WriteRatio, cfg.PatchRatio = 1, 0
	result := run(t, cfg)
	if len(result.Notes) != 10 {
		t.Fatalf("got %d acknowledged notes, want 10", len(result.Notes))
	}

	api.Delete(result.Notes[3].ID)
	api.SetBody(result.Notes[7].ID, "changed behind the client's back")
	err := loadgen.Verify(context.Background(), api.Client, api.URL, result.Notes)

	verifyErr, ok := errors.AsType[*loadgen.VerifyError](err)
	if !ok {
		t.Fatalf("got error %v, want a *loadgen.VerifyError", err)
	}
	if verifyErr.Checked != 10 {
		t.Errorf("got %d notes checked, want 10", verifyErr.Checked)
	}
	if len(verifyErr.Failures) != 2 {
		t.Fatalf("got %d failures, want 2: %v", len(verifyErr.Failures), err)
	}
	if msg := verifyErr.Failures[0].Error(); !strings.Contains(msg, result.Notes[3].ID) || !strings.Contains(msg, "got status 404") {
		t.Errorf("first failure: got %q, want the id of the lost note and status 404", msg)
	}
	if msg := verifyErr.Failures[1].Error(); !strings.Contains(msg, result.Notes[7].ID) || !strings.Contains(msg, "changed behind") {
		t.Errorf("second failure: got %q, want the id of the changed note and its body", msg)
	}
}

func TestNewClientMissingFiles(t *testing.T) {
	dir := t.TempDir()

	_, err := loadgen.NewClient(dir, 1)

	if err == nil || !strings.Contains(err.Error(), "tls.crt") {
		t.Errorf("got error %v, want one that names tls.crt", err)
	}
}
