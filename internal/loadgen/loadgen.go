package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Config fields left zero.
const (
	DefaultConcurrency    = 32
	DefaultRequestTimeout = 10 * time.Second
)

// maxFailureExamples bounds Result.FailureExamples.
const maxFailureExamples = 10

// Config describes one run. BaseURL, Client and at least one of Duration
// and Requests are required.
type Config struct {
	// BaseURL is the scheme, host and port of the API, for example
	// "https://localhost:8443". Requests go to BaseURL + "/v1/notes".
	BaseURL string

	// Client sends every request. Its transport must present the client
	// certificate whose identity owns the notes. With HTTP/1.1 it needs
	// about Concurrency idle connections per host to avoid new handshakes.
	Client *http.Client

	// Rate is the number of requests started per second, on an open-loop
	// schedule. Zero selects a closed loop instead: each of Concurrency
	// workers starts its next request as soon as its previous one ends.
	Rate float64

	// Duration ends the run. No request starts at or after this long since
	// the run began. Requests in flight at that moment still finish, so Run
	// returns up to RequestTimeout later. Zero means no time limit.
	Duration time.Duration

	// Requests is the maximum number of requests started. Zero means no
	// limit.
	Requests int

	// Concurrency is the maximum number of requests in flight, and in a
	// closed loop also the number of workers that keep one request in
	// flight each. Zero means DefaultConcurrency.
	Concurrency int

	// RequestTimeout bounds each request, reading the response included.
	// Zero means DefaultRequestTimeout.
	RequestTimeout time.Duration

	// WriteRatio, PatchRatio and ListRatio are probabilities from 0 to 1
	// that set the mix, as the package documentation describes: the share
	// of requests that write, the share of writes that PATCH, and the share
	// of reads that list. Zero is a valid value, not a default.
	WriteRatio float64
	PatchRatio float64
	ListRatio  float64

	// Seed seeds the random choice of operations and notes. Runs with the
	// same seed draw the same random numbers, but the order in which the
	// workers use them depends on timing.
	Seed uint64
}

// validate returns every problem of c, joined.
func (c Config) validate() error {
	var errs []error
	if u, err := url.Parse(c.BaseURL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		errs = append(errs, fmt.Errorf("invalid BaseURL %q: want a URL such as https://localhost:8443", c.BaseURL))
	}
	if c.Client == nil {
		errs = append(errs, errors.New("missing Client: set an *http.Client that presents the client certificate"))
	}
	if !(c.Rate >= 0) || math.IsInf(c.Rate, 1) {
		errs = append(errs, fmt.Errorf("invalid Rate %v: want a finite positive number of requests per second, or 0 for a closed loop", c.Rate))
	}
	if c.Duration < 0 || c.Requests < 0 {
		errs = append(errs, fmt.Errorf("invalid bounds: Duration is %v and Requests is %d, neither may be negative", c.Duration, c.Requests))
	}
	if c.Duration == 0 && c.Requests == 0 {
		errs = append(errs, errors.New("missing bound: set Duration, Requests or both, so that the run ends"))
	}
	if c.Concurrency < 0 || c.RequestTimeout < 0 {
		errs = append(errs, fmt.Errorf("invalid Concurrency %d or RequestTimeout %v: neither may be negative", c.Concurrency, c.RequestTimeout))
	}
	for _, ratio := range []struct {
		name  string
		value float64
	}{{"WriteRatio", c.WriteRatio}, {"PatchRatio", c.PatchRatio}, {"ListRatio", c.ListRatio}} {
		if !(ratio.value >= 0 && ratio.value <= 1) {
			errs = append(errs, fmt.Errorf("invalid %s %v: want a probability from 0 to 1", ratio.name, ratio.value))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid loadgen config: %w", errors.Join(errs...))
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	return c
}

// Result is the outcome of a run. Requests that the caller's context
// cancelled are left out of Requests, Operations, Failures and Latency.
type Result struct {
	// Requests is the number of requests that ended, failed or not.
	Requests int

	// Operations counts the requests by operation.
	Operations map[Operation]int

	// Failures counts the failed requests by kind.
	Failures map[FailureKind]int

	// FailureExamples contains the messages of up to ten failures, in no
	// particular order.
	FailureExamples []string

	// Elapsed runs from the start of the run to the end of the last
	// request.
	Elapsed time.Duration

	// RequestsPerSecond is Requests divided by Elapsed.
	RequestsPerSecond float64

	// Latency summarizes the latency of every request in Requests, failed
	// ones included, each measured from its scheduled start (in a closed
	// loop, its actual start) until its response has been read and checked.
	Latency Latency

	// Notes are the notes whose creation the server acknowledged, each with
	// the content of its last acknowledged write.
	Notes []Note

	// UncertainNotes counts the notes left out of Notes because a PATCH of
	// theirs failed, so their body may or may not have changed.
	UncertainNotes int
}

// Failed returns the number of failed requests.
func (r Result) Failed() int {
	total := 0
	for _, n := range r.Failures {
		total += n
	}
	return total
}

// Run sends requests as cfg describes and returns when the run's bounds
// have passed and every request in flight has ended. It returns an error
// without sending anything when cfg is invalid. When ctx ends first, Run cancels the
// requests in flight and returns what it measured so far with ctx.Err().
// Failed requests are counted in the Result, never returned as an error.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.validate(); err != nil {
		return Result{}, err
	}
	cfg = cfg.withDefaults()

	r := &runner{cfg: cfg, notesURL: cfg.BaseURL + notesPath, ledger: &ledger{}, start: time.Now()}
	workers := make([]*worker, cfg.Concurrency)
	var wg sync.WaitGroup
	for i := range workers {
		workers[i] = &worker{
			runner:   r,
			random:   rand.New(rand.NewPCG(cfg.Seed, uint64(i))),
			ops:      make(map[Operation]int),
			failures: make(map[FailureKind]int),
		}
		wg.Go(func() { workers[i].run(ctx) })
	}
	wg.Wait()

	return r.result(workers), ctx.Err()
}

// runner is the state that the workers of one run share.
type runner struct {
	cfg      Config
	notesURL string
	ledger   *ledger
	start    time.Time

	// next is the index of the next request to schedule.
	next atomic.Int64
}

// claim returns the index and scheduled start of the next request, or false
// when the run has ended. On an open-loop schedule the start is the
// request's slot, which may lie in the future. In a closed loop it is now.
func (r *runner) claim() (int64, time.Time, bool) {
	index := r.next.Add(1) - 1
	if r.cfg.Requests > 0 && index >= int64(r.cfg.Requests) {
		return 0, time.Time{}, false
	}
	offset := time.Since(r.start)
	if r.cfg.Rate > 0 {
		slot := float64(index) * float64(time.Second) / r.cfg.Rate
		// A slot beyond the range of time.Duration, about 292 years, would
		// overflow to a negative offset, so the schedule ends before it.
		if slot >= math.MaxInt64 {
			return 0, time.Time{}, false
		}
		offset = time.Duration(slot)
	}
	if r.cfg.Duration > 0 && offset >= r.cfg.Duration {
		return 0, time.Time{}, false
	}
	return index, r.start.Add(offset), true
}

// result merges the workers' records.
func (r *runner) result(workers []*worker) Result {
	res := Result{Operations: make(map[Operation]int), Failures: make(map[FailureKind]int)}
	var latencies []time.Duration
	end := r.start
	for _, w := range workers {
		latencies = append(latencies, w.latencies...)
		for op, n := range w.ops {
			res.Operations[op] += n
		}
		for kind, n := range w.failures {
			res.Failures[kind] += n
		}
		room := maxFailureExamples - len(res.FailureExamples)
		res.FailureExamples = append(res.FailureExamples, w.examples[:min(room, len(w.examples))]...)
		if w.lastEnd.After(end) {
			end = w.lastEnd
		}
	}

	res.Requests = len(latencies)
	res.Elapsed = end.Sub(r.start)
	if res.Elapsed > 0 {
		res.RequestsPerSecond = float64(res.Requests) / res.Elapsed.Seconds()
	}
	res.Latency = summarize(latencies)
	res.Notes, res.UncertainNotes = r.ledger.acknowledged()
	return res
}

// worker sends one request at a time and records its outcomes, so that
// recording needs no lock.
type worker struct {
	*runner
	random *rand.Rand

	latencies []time.Duration
	lastEnd   time.Time
	ops       map[Operation]int
	failures  map[FailureKind]int
	examples  []string
}

func (w *worker) run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()

	for {
		index, scheduled, ok := w.claim()
		if !ok {
			return
		}
		timer.Reset(time.Until(scheduled))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		w.send(ctx, index, scheduled)
	}
}

// send sends request index and records it, unless ctx ended meanwhile.
func (w *worker) send(ctx context.Context, index int64, scheduled time.Time) {
	req := w.choose(index)

	reqCtx, cancel := context.WithTimeout(ctx, w.cfg.RequestTimeout)
	err := req.do(reqCtx, w.cfg.Client, w.notesURL)
	cancel()
	end := time.Now()
	req.finish(w.ledger, err)

	if ctx.Err() != nil {
		return
	}
	w.latencies = append(w.latencies, end.Sub(scheduled))
	w.lastEnd = end
	w.ops[req.op]++
	if err != nil {
		w.recordFailure(err)
	}
}

func (w *worker) recordFailure(err error) {
	kind := FailureTransport
	if failure, ok := errors.AsType[*requestError](err); ok {
		kind = failure.kind
	}
	w.failures[kind]++
	if len(w.examples) < maxFailureExamples {
		w.examples = append(w.examples, err.Error())
	}
}
