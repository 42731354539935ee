package integration

import (
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"example.com/rotor/internal/loadgen"
	"example.com/rotor/internal/provision"
)

// Load of the rotation benchmark, the same for both stacks. Each stack gets
// two phases, each after a warm-up that is left out of the figures.
//
// The fixed-rate phase sends 200 requests per second for a minute. That
// gives 12,000 latency samples per stack, so the p99 rests on the 120
// slowest, and the rotating stack rotates about a dozen times. The rate stays low enough for Postgres, Vault, rotor and the
// load generator to share two cores.
//
// The saturated phase runs a closed loop of 16 workers for 30 seconds,
// about six rotations. 16 requests in flight are more than
// rotor's database pool has connections (ROTOR_DB_MAX_CONNS, 10 by
// default), so rotor always has a request waiting, and the machine sets the
// rate.
//
// The first warm-up fills the connection pool and the HTTP/2 connection,
// and the second lets the closed loop settle.
const (
	benchRate               = 200
	benchDuration           = time.Minute
	benchConcurrency        = 64
	benchSaturationWorkers  = 16
	benchSaturationDuration = 30 * time.Second
	benchWarmUp             = 5 * time.Second
	benchWriteRatio         = 0.3
	benchPatchRatio         = 0.3
	benchListRatio          = 0.2
	benchIdentity           = "spiffe://rotor.test/client/loadgen"
)

// Runtime credential lifetimes of the two stacks. An hour outlasts the
// benchmark, so the static stack never rotates.
//
// The rotating stack rotates about every 5 seconds. Rotor reads a new
// credential when vault/api's LifetimeWatcher (v1.23.0) ends the lease's
// renewal: about 2/3 of the TTL plus a third of a grace period, itself a
// random 10% to 20% of the TTL, so about 72% of the TTL. A TTL of 7 seconds
// gives a rotation about every 5 seconds; the table prints the measured
// interval.
const (
	staticCredentialTTL   = time.Hour
	rotatingCredentialTTL = 7 * time.Second
)

// Targets of the rotating stack relative to the static one. They are
// printed, never asserted, because timings on a shared machine vary between
// runs. The throughput target applies to the saturated phase, because at a
// fixed rate both stacks achieve the rate as long as they keep up. The p99
// target applies to the fixed-rate phase, because a closed loop slows down
// with the server and so understates latency.
const (
	targetThroughputRatio = 0.95 // rotating requests/s at least this share of static
	targetP99Ratio        = 1.5  // rotating p99 at most this multiple of static
)

// credentialIssuedLine is the text that rotor's log contains once for every
// database credential that it reads from Vault.
const credentialIssuedLine = `msg="database credential issued"`

// benchPhase is the outcome of one phase of load on one stack.
type benchPhase struct {
	name   string
	warmUp loadgen.Result // load before the measured one, in the table only by its failures
	result loadgen.Result // measured load

	// credentialsIssued counts the credentials that rotor read during the
	// measured part of the phase.
	credentialsIssued int

	// rotationInterval is the mean time between the credentials that
	// rotor read during the measured part, zero with fewer than two.
	rotationInterval time.Duration

	// cpu is the CPU time that each part of the stack used during the
	// measured part of the phase.
	cpu cpuTime
}

// benchStack is the outcome of loading one stack: a phase at a fixed rate,
// then a saturated one.
type benchStack struct {
	fixedRate benchPhase
	saturated benchPhase

	// connection is what one new Postgres connection costs, measured
	// before the load.
	connection connectionCost
}

func (b benchStack) phases() []benchPhase {
	return []benchPhase{b.fixedRate, b.saturated}
}

// TestBenchRotation drives the same load against three stacks, one after
// the other: one whose database credentials never rotate, one whose
// credentials rotate about every five seconds, and a second static one.
// Each gets a fixed rate first, then a closed loop that saturates the
// machine. The test prints throughput and latency of every phase on every
// stack, and the rotating stack's figures against the mean of the two
// static stacks. The second static stack shows how much the machine's
// speed drifted during the run, because other load on a shared machine can
// change the figures more than rotation does.
//
// The test fails when a request fails, an acknowledged write cannot be read
// back, or a phase did not rotate as its TTL implies, but never because of
// a timing.
func TestBenchRotation(t *testing.T) {
	if os.Getenv("ROTOR_BENCH") != "1" {
		t.Skip("set ROTOR_BENCH=1 to run the rotation benchmark, which takes about six minutes; `make bench` does")
	}
	t.Logf("load: fixed rate of %d requests/s for %v, at most %d in flight, then saturated by a closed loop of %d workers for %v, each phase after a %v warm-up; %.0f%% writes (%.0f%% of them PATCH), %.0f%% of reads list",
		benchRate, benchDuration, benchConcurrency, benchSaturationWorkers, benchSaturationDuration, benchWarmUp,
		benchWriteRatio*100, benchPatchRatio*100, benchListRatio*100)
	t.Logf("machine: %d CPUs (GOMAXPROCS %d), shared by Postgres, Vault, rotor and the load generator, so figures vary from run to run",
		runtime.NumCPU(), runtime.GOMAXPROCS(0))

	var static, rotating, staticAgain benchStack
	runStatic := func(stack *benchStack) func(t *testing.T) {
		return func(t *testing.T) {
			*stack = runBench(t, staticCredentialTTL)
			for _, phase := range stack.phases() {
				if phase.credentialsIssued != 0 {
					t.Errorf("%s phase: rotor read %d database credentials, want none with a TTL of %v", phase.name, phase.credentialsIssued, staticCredentialTTL)
				}
			}
		}
	}
	passed := []bool{
		t.Run("static", runStatic(&static)),
		t.Run("rotating", func(t *testing.T) {
			rotating = runBench(t, rotatingCredentialTTL)
			for _, phase := range rotating.phases() {
				if phase.credentialsIssued == 0 {
					t.Errorf("%s phase: rotor read no database credential, so the phase measured no rotation", phase.name)
				}
			}
		}),
		t.Run("static_again", runStatic(&staticAgain)),
	}

	if slices.Contains(passed, false) {
		t.Logf("no comparison: a stack did not finish (static, rotating, static again passed: %v)", passed)
		return
	}
	t.Log("rotating against static:\n" + compareBenchStacks(static, rotating, staticAgain))
}

// runBench starts a stack whose runtime credentials live for ttl, runs the
// fixed-rate and the saturated phase, and reads every acknowledged write of
// both back.
func runBench(t *testing.T, ttl time.Duration) benchStack {
	s := startStack(t, provision.Options{RuntimeTTL: ttl, RuntimeMaxTTL: ttl})
	client := s.client(t, benchIdentity)
	fixedRate := loadgen.Config{
		BaseURL:     s.baseURL(),
		Client:      client,
		Rate:        benchRate,
		Duration:    benchDuration,
		Concurrency: benchConcurrency,
		WriteRatio:  benchWriteRatio,
		PatchRatio:  benchPatchRatio,
		ListRatio:   benchListRatio,
		Seed:        1,
	}
	saturated := fixedRate
	saturated.Rate = 0 // a closed loop
	saturated.Duration = benchSaturationDuration
	saturated.Concurrency = benchSaturationWorkers

	meter := newCPUMeter(t, s)
	connection := measureConnectionCost(t, s, meter)
	t.Logf("a new Postgres connection with a SCRAM login and one query, mean of %d: %v of CPU in Postgres, %v in this process",
		connectionCostSamples, roundCPU(connection.postgres), roundCPU(connection.client))
	bench := benchStack{
		fixedRate:  runBenchPhase(t, s, meter, "fixed rate", ttl, fixedRate),
		saturated:  runBenchPhase(t, s, meter, "saturated", ttl, saturated),
		connection: connection,
	}

	var acknowledged []loadgen.Note
	uncertain := 0
	for _, phase := range bench.phases() {
		acknowledged = slices.Concat(acknowledged, phase.warmUp.Notes, phase.result.Notes)
		uncertain += phase.warmUp.UncertainNotes + phase.result.UncertainNotes
	}
	if err := loadgen.Verify(t.Context(), client, s.baseURL(), acknowledged); err != nil {
		t.Errorf("read-back of acknowledged writes: %v", err)
	} else {
		t.Logf("read-back: all %d acknowledged notes hold their last written content", len(acknowledged))
	}
	if uncertain > 0 {
		t.Logf("read-back skipped %d notes whose PATCH failed, because their content is unknown", uncertain)
	}
	return bench
}

// runBenchPhase warms s up with cfg for benchWarmUp, then measures cfg for
// cfg.Duration and counts the credentials that rotor read and the CPU time
// that each part of the stack used meanwhile.
func runBenchPhase(t *testing.T, s *stack, meter *cpuMeter, name string, ttl time.Duration, cfg loadgen.Config) benchPhase {
	t.Helper()

	warmUp := runBenchLoad(t, cfg, benchWarmUp)
	logsBefore := len(s.logs.String())
	cpuBefore := meter.read(t)
	result := runBenchLoad(t, cfg, cfg.Duration)
	cpu := meter.read(t).sub(cpuBefore)
	issued := credentialIssueTimes(t, s.logs.String()[logsBefore:])
	issuedDuring := len(issued)
	var interval time.Duration
	if n := len(issued); n >= 2 {
		interval = issued[n-1].Sub(issued[0]) / time.Duration(n-1)
	}

	t.Logf("%s, credential TTL %v: %d requests in %v, %.1f requests/s, p50 %v, p90 %v, p99 %v, max %v, %d failed, %d credentials read during the phase",
		name, ttl, result.Requests, result.Elapsed.Round(time.Millisecond), result.RequestsPerSecond,
		roundLatency(result.Latency.P50), roundLatency(result.Latency.P90), roundLatency(result.Latency.P99),
		roundLatency(result.Latency.Max), result.Failed(), issuedDuring)
	checkNoFailedRequests(t, name+" warm-up", warmUp)
	checkNoFailedRequests(t, name, result)

	return benchPhase{name: name, warmUp: warmUp, result: result, credentialsIssued: issuedDuring, rotationInterval: interval, cpu: cpu}
}

// credentialIssueTimes returns the times of the lines in logs, rotor's log
// in slog's text format, that report a database credential read.
func credentialIssueTimes(t *testing.T, logs string) []time.Time {
	t.Helper()

	var times []time.Time
	for line := range strings.Lines(logs) {
		if !strings.Contains(line, credentialIssuedLine) {
			continue
		}
		fields, ok := strings.CutPrefix(line, "time=")
		if !ok {
			t.Fatalf("rotor's log line has no time first: %q", line)
		}
		stamp, _, _ := strings.Cut(fields, " ")
		at, err := time.Parse(time.RFC3339Nano, stamp)
		if err != nil {
			t.Fatalf("rotor's log line has an invalid time: %v: %q", err, line)
		}
		times = append(times, at)
	}
	return times
}

func runBenchLoad(t *testing.T, cfg loadgen.Config, duration time.Duration) loadgen.Result {
	t.Helper()

	cfg.Duration = duration
	result, err := loadgen.Run(t.Context(), cfg)
	if err != nil {
		t.Fatalf("load for %v: %v", duration, err)
	}
	return result
}

// checkNoFailedRequests fails the test when a request of the run failed, with
// the count of each kind and some of the messages.
func checkNoFailedRequests(t *testing.T, name string, result loadgen.Result) {
	t.Helper()

	if result.Failed() == 0 {
		return
	}
	var kinds []string
	for _, kind := range slices.Sorted(maps.Keys(result.Failures)) {
		kinds = append(kinds, fmt.Sprintf("%s %d", kind, result.Failures[kind]))
	}
	t.Errorf("%s: %d of %d requests failed, want none (%s); for example:\n  %s",
		name, result.Failed(), result.Requests, strings.Join(kinds, ", "), strings.Join(result.FailureExamples, "\n  "))
}

// compareBenchStacks returns a table of the three stacks' figures for each
// phase, with the ratios of rotating to static and of the second static
// stack to the first, and notes on how to read them.
func compareBenchStacks(static, rotating, staticAgain benchStack) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	writePhaseRows(w, static.fixedRate, rotating.fixedRate, staticAgain.fixedRate, phaseTargets{maxP99Ratio: targetP99Ratio})
	fmt.Fprintln(w)
	writePhaseRows(w, static.saturated, rotating.saturated, staticAgain.saturated, phaseTargets{minThroughputRatio: targetThroughputRatio})
	fmt.Fprintln(w)
	fmt.Fprintf(w, "one new connection\tstatic\trotating\tstatic again\t\t\t\n")
	fmt.Fprintf(w, "CPU, Postgres\t%v\t%v\t%v\t\t\t\n",
		roundCPU(static.connection.postgres), roundCPU(rotating.connection.postgres), roundCPU(staticAgain.connection.postgres))
	fmt.Fprintf(w, "CPU, client\t%v\t%v\t%v\t\t\t\n",
		roundCPU(static.connection.client), roundCPU(rotating.connection.client), roundCPU(staticAgain.connection.client))
	w.Flush()

	fmt.Fprintf(&b, "\nrotating/static compares the rotating stack with the mean of the two static stacks. again/static compares the second static stack with the first:\n")
	fmt.Fprintf(&b, "the further it is from 1.00, the more the machine's speed changed during the run, and the less a ratio of that size means.\n")
	fmt.Fprintf(&b, "At a fixed rate, requests/s only show that rotor kept up with the schedule. The saturated requests/s measure throughput.\n")
	fmt.Fprintf(&b, "Saturated throughput is that of the whole machine: on its %d CPUs the load generator competes with rotor, Postgres and Vault for CPU.\n",
		runtime.NumCPU())
	return b.String()
}

// phaseTargets are the targets of one phase. A zero field means that the
// phase has no such target.
type phaseTargets struct {
	minThroughputRatio float64
	maxP99Ratio        float64
}

// writePhaseRows writes the rows of one phase to w, a tabwriter, headed by
// the phase's name.
func writePhaseRows(w io.Writer, static, rotating, staticAgain benchPhase, targets phaseTargets) {
	s, r, a := static.result, rotating.result, staticAgain.result
	staticRate := (s.RequestsPerSecond + a.RequestsPerSecond) / 2
	staticP99 := (s.Latency.P99 + a.Latency.P99) / 2
	throughputRatio := r.RequestsPerSecond / staticRate
	p99Ratio := durationRatio(r.Latency.P99, staticP99)
	var throughputNote, p99Note string
	if target := targets.minThroughputRatio; target > 0 {
		throughputNote = describeTarget(throughputRatio >= target, fmt.Sprintf(">= %.2f", target))
	}
	if target := targets.maxP99Ratio; target > 0 {
		p99Note = describeTarget(p99Ratio <= target, fmt.Sprintf("<= %.1f", target))
	}

	fmt.Fprintf(w, "%s\tstatic\trotating\tstatic again\trotating/static\tagain/static\t\n", static.name)
	fmt.Fprintf(w, "requests/s\t%.1f\t%.1f\t%.1f\t%.3f\t%.3f\t%s\n", s.RequestsPerSecond, r.RequestsPerSecond, a.RequestsPerSecond,
		throughputRatio, a.RequestsPerSecond/s.RequestsPerSecond, throughputNote)
	latencyRow := func(name string, static, rotating, again time.Duration, target string) {
		fmt.Fprintf(w, "%s\t%v\t%v\t%v\t%.2f\t%.2f\t%s\n", name, roundLatency(static), roundLatency(rotating), roundLatency(again),
			durationRatio(rotating, (static+again)/2), durationRatio(again, static), target)
	}
	latencyRow("p50", s.Latency.P50, r.Latency.P50, a.Latency.P50, "")
	latencyRow("p90", s.Latency.P90, r.Latency.P90, a.Latency.P90, "")
	latencyRow("p99", s.Latency.P99, r.Latency.P99, a.Latency.P99, p99Note)
	latencyRow("max", s.Latency.Max, r.Latency.Max, a.Latency.Max, "")
	fmt.Fprintf(w, "requests\t%d\t%d\t%d\t\t\t\n", s.Requests, r.Requests, a.Requests)
	fmt.Fprintf(w, "failed requests\t%d\t%d\t%d\t\t\t\n", s.Failed(), r.Failed(), a.Failed())
	fmt.Fprintf(w, "failed in warm-up\t%d of %d\t%d of %d\t%d of %d\t\t\t\n",
		static.warmUp.Failed(), static.warmUp.Requests, rotating.warmUp.Failed(), rotating.warmUp.Requests,
		staticAgain.warmUp.Failed(), staticAgain.warmUp.Requests)
	fmt.Fprintf(w, "credentials read\t%d\t%d\t%d\t\t\t(during the measured part)\n",
		static.credentialsIssued, rotating.credentialsIssued, staticAgain.credentialsIssued)
	if interval := rotating.rotationInterval; interval > 0 {
		fmt.Fprintf(w, "mean rotation interval\t\t%v\t\t\t\t\n", interval.Round(10*time.Millisecond))
	}
	writeCPURows(w, static, rotating, staticAgain)
	fmt.Fprintf(w, "CPU stolen by the hypervisor\t%.1f%%\t%.1f%%\t%.1f%%\t\t\t(of the whole machine)\n",
		static.cpu.stolenShare()*100, rotating.cpu.stolenShare()*100, staticAgain.cpu.stolenShare()*100)
}

// writeCPURows writes, for each part of the stack, its CPU time per 1000
// requests on every stack. The static stacks' figures differ by as much as
// the machine's speed changed between them, which is often more than what
// rotation adds, so the rows show where the CPU goes rather than what a
// rotation costs. The table's last section measures that directly: the
// cost of one new connection.
func writeCPURows(w io.Writer, static, rotating, staticAgain benchPhase) {
	parts := []struct {
		name                    string
		static, rotating, again time.Duration
	}{
		{"rotor and load generator", static.cpu.process, rotating.cpu.process, staticAgain.cpu.process},
		{"Postgres", static.cpu.postgres, rotating.cpu.postgres, staticAgain.cpu.postgres},
		{"Vault", static.cpu.vault, rotating.cpu.vault, staticAgain.cpu.vault},
	}
	perRequest := func(cpu time.Duration, phase benchPhase) float64 {
		return float64(cpu) / float64(phase.result.Requests)
	}
	for _, part := range parts {
		staticPerRequest := perRequest(part.static, static)
		rotatingPerRequest := perRequest(part.rotating, rotating)
		againPerRequest := perRequest(part.again, staticAgain)
		fmt.Fprintf(w, "CPU per 1000 requests, %s\t%v\t%v\t%v\t%.2f\t%.2f\t\n", part.name,
			roundCPU(time.Duration(staticPerRequest*1000)), roundCPU(time.Duration(rotatingPerRequest*1000)),
			roundCPU(time.Duration(againPerRequest*1000)), rotatingPerRequest/((staticPerRequest+againPerRequest)/2),
			againPerRequest/staticPerRequest)
	}
}

// roundLatency rounds a latency to the microsecond for display.
func roundLatency(d time.Duration) time.Duration {
	return d.Round(time.Microsecond)
}

func durationRatio(numerator, denominator time.Duration) float64 {
	return float64(numerator) / float64(denominator)
}

func describeTarget(met bool, target string) string {
	if met {
		return "target " + target + ": met"
	}
	return "target " + target + ": missed"
}

// roundCPU rounds a CPU time to 0.1 ms for display.
func roundCPU(d time.Duration) time.Duration {
	return d.Round(100 * time.Microsecond)
}
