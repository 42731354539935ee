package integration

import (
	"fmt"
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

// Load of the rotation benchmark, the same for both runs. 200 requests per
// second for a minute gives 12,000 latency samples per run, so the p99 rests
// on the 120 slowest, and the rotating run spans about a dozen 5-second
// credential lifetimes. The rate stays low enough for Postgres, Vault, rotor
// and the load generator to share two cores. The warm-up fills the
// connection pool and the HTTP/2 connection before anything is measured.
const (
	benchRate        = 200
	benchDuration    = time.Minute
	benchWarmUp      = 5 * time.Second
	benchConcurrency = 64
	benchWriteRatio  = 0.3
	benchPatchRatio  = 0.3
	benchListRatio   = 0.2
	benchIdentity    = "spiffe://rotor.test/client/loadgen"
)

// Runtime credential lifetimes of the two runs. An hour outlasts the run,
// so the static run never rotates.
const (
	staticCredentialTTL   = time.Hour
	rotatingCredentialTTL = 5 * time.Second
)

// Targets of the rotating run relative to the static one. They are printed,
// never asserted, because timings on a shared machine vary between runs.
const (
	targetThroughputRatio = 0.95 // rotating requests/s at least this share of static
	targetP99Ratio        = 1.5  // rotating p99 at most this multiple of static
)

// credentialIssuedLine is the text that rotor's log contains once for every
// database credential that it reads from Vault.
const credentialIssuedLine = `msg="database credential issued"`

// benchRun is the outcome of loading one stack.
type benchRun struct {
	result loadgen.Result

	// warmUpRequests and warmUpFailures count the warm-up, which the result
	// leaves out.
	warmUpRequests int
	warmUpFailures int

	// credentialsIssued counts the credentials that rotor read during the
	// measured run.
	credentialsIssued int
}

// TestBenchRotation drives the same load against a stack whose database
// credentials never rotate and then against one whose credentials rotate
// every five seconds, and prints throughput and latency of both. It fails
// when a request fails, an acknowledged write cannot be read back, or a run
// did not rotate as its TTL implies, but never because of a timing.
func TestBenchRotation(t *testing.T) {
	if os.Getenv("ROTOR_BENCH") != "1" {
		t.Skip("set ROTOR_BENCH=1 to run the rotation benchmark, which takes about three minutes; `make bench` does")
	}
	t.Logf("load: %d requests/s for %v after a %v warm-up, at most %d in flight, %.0f%% writes (%.0f%% of them PATCH), %.0f%% of reads list",
		benchRate, benchDuration, benchWarmUp, benchConcurrency, benchWriteRatio*100, benchPatchRatio*100, benchListRatio*100)
	t.Logf("machine: %d CPUs (GOMAXPROCS %d), shared by Postgres, Vault, rotor and the load generator, so figures vary from run to run",
		runtime.NumCPU(), runtime.GOMAXPROCS(0))

	var static, rotating benchRun
	staticDone := t.Run("static", func(t *testing.T) {
		static = runBench(t, staticCredentialTTL)
		if static.credentialsIssued != 0 {
			t.Errorf("rotor read %d database credentials during the measured run, want none with a TTL of %v", static.credentialsIssued, staticCredentialTTL)
		}
	})
	rotatingDone := t.Run("rotating", func(t *testing.T) {
		rotating = runBench(t, rotatingCredentialTTL)
		if rotating.credentialsIssued == 0 {
			t.Errorf("rotor read no database credential during the measured run, so the run measured no rotation")
		}
	})

	if static.result.Requests > 0 && rotating.result.Requests > 0 {
		t.Log("rotating against static:\n" + compareBenchRuns(static, rotating))
	} else {
		t.Logf("no comparison: a run did not finish (static passed: %v, rotating passed: %v)", staticDone, rotatingDone)
	}
}

// runBench starts a stack whose runtime credentials live for ttl, warms it
// up, measures the load, and reads every acknowledged write back.
func runBench(t *testing.T, ttl time.Duration) benchRun {
	s := startStack(t, provision.Options{RuntimeTTL: ttl, RuntimeMaxTTL: ttl})
	client := s.client(t, benchIdentity)
	cfg := loadgen.Config{
		BaseURL:     s.baseURL(),
		Client:      client,
		Rate:        benchRate,
		Concurrency: benchConcurrency,
		WriteRatio:  benchWriteRatio,
		PatchRatio:  benchPatchRatio,
		ListRatio:   benchListRatio,
		Seed:        1,
	}

	warmUp := runBenchLoad(t, cfg, benchWarmUp)
	issuedBefore := strings.Count(s.logs.String(), credentialIssuedLine)
	result := runBenchLoad(t, cfg, benchDuration)
	issuedDuring := strings.Count(s.logs.String(), credentialIssuedLine) - issuedBefore

	t.Logf("credential TTL %v: %d requests in %v, %.1f requests/s, p50 %v, p90 %v, p99 %v, max %v, %d failed, %d credentials read during the run",
		ttl, result.Requests, result.Elapsed.Round(time.Millisecond), result.RequestsPerSecond,
		roundLatency(result.Latency.P50), roundLatency(result.Latency.P90), roundLatency(result.Latency.P99),
		roundLatency(result.Latency.Max), result.Failed(), issuedDuring)
	checkNoFailedRequests(t, "warm-up", warmUp)
	checkNoFailedRequests(t, "measured run", result)

	acknowledged := slices.Concat(warmUp.Notes, result.Notes)
	if err := loadgen.Verify(t.Context(), client, s.baseURL(), acknowledged); err != nil {
		t.Errorf("read-back of acknowledged writes: %v", err)
	} else {
		t.Logf("read-back: all %d acknowledged notes hold their last written content", len(acknowledged))
	}
	if uncertain := warmUp.UncertainNotes + result.UncertainNotes; uncertain > 0 {
		t.Logf("read-back skipped %d notes whose PATCH failed, because their content is unknown", uncertain)
	}

	return benchRun{
		result:            result,
		warmUpRequests:    warmUp.Requests,
		warmUpFailures:    warmUp.Failed(),
		credentialsIssued: issuedDuring,
	}
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

// compareBenchRuns returns a table of both runs' figures and their ratios.
func compareBenchRuns(static, rotating benchRun) string {
	s, r := static.result, rotating.result
	throughputRatio := r.RequestsPerSecond / s.RequestsPerSecond
	p99Ratio := durationRatio(r.Latency.P99, s.Latency.P99)

	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "\tstatic\trotating\trotating/static")
	fmt.Fprintf(w, "requests/s\t%.1f\t%.1f\t%.3f\t%s\n", s.RequestsPerSecond, r.RequestsPerSecond, throughputRatio,
		describeTarget(throughputRatio >= targetThroughputRatio, fmt.Sprintf(">= %.2f", targetThroughputRatio)))
	latencyRow := func(name string, staticLatency, rotatingLatency time.Duration, target string) {
		fmt.Fprintf(w, "%s\t%v\t%v\t%.2f\t%s\n", name, roundLatency(staticLatency), roundLatency(rotatingLatency),
			durationRatio(rotatingLatency, staticLatency), target)
	}
	latencyRow("p50", s.Latency.P50, r.Latency.P50, "")
	latencyRow("p90", s.Latency.P90, r.Latency.P90, "")
	latencyRow("p99", s.Latency.P99, r.Latency.P99,
		describeTarget(p99Ratio <= targetP99Ratio, fmt.Sprintf("<= %.1f", targetP99Ratio)))
	latencyRow("max", s.Latency.Max, r.Latency.Max, "")
	fmt.Fprintf(w, "requests\t%d\t%d\t\t\n", s.Requests, r.Requests)
	fmt.Fprintf(w, "failed requests\t%d\t%d\t\t\n", s.Failed(), r.Failed())
	fmt.Fprintf(w, "failed in warm-up\t%d of %d\t%d of %d\t\t\n", static.warmUpFailures, static.warmUpRequests, rotating.warmUpFailures, rotating.warmUpRequests)
	fmt.Fprintf(w, "credentials read\t%d\t%d\t\t(during the measured run)\n", static.credentialsIssued, rotating.credentialsIssued)
	w.Flush()
	return b.String()
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
