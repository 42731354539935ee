// Command loadgen sends a mix of reads and writes to rotor's notes API over
// mutual TLS, prints the throughput, latency percentiles and failures, and
// reads every acknowledged write back. It sends at a fixed rate, or with
// -rate 0 in a closed loop, where each of -concurrency workers sends its
// next request as soon as its previous one ends. `loadgen -help` lists the
// flags.
//
// It exits with status 1 when a request or the read-back failed, and with
// status 2 on invalid flags. Ctrl-C stops the run early, prints what was
// measured so far and skips the read-back.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"example.com/rotor/internal/loadgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()

	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// errUsage marks flag errors, which the flag package has already printed.
var errUsage = errors.New("invalid flags")

// options are the parsed flags.
type options struct {
	url     string
	certDir string
	verify  bool
	config  loadgen.Config
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var opts options
	flags := flag.NewFlagSet(args[0], flag.ContinueOnError)
	flags.SetOutput(stderr)

	flags.StringVar(&opts.url, "url", "https://localhost:8443", "base URL of the notes API, without /v1/notes")
	flags.StringVar(&opts.certDir, "cert-dir", "local/certs/client", "directory with the client certificate in cert-manager's layout: tls.crt, tls.key and ca.crt (the CA of the server certificate)")
	flags.Float64Var(&opts.config.Rate, "rate", 200, "requests started per second; 0 for a closed loop, in which each of -concurrency workers sends its next request as soon as its previous one ends")
	flags.DurationVar(&opts.config.Duration, "duration", 30*time.Second, "time during which requests start, such as 30s or 2m; 0 for no limit, which needs -requests")
	flags.IntVar(&opts.config.Requests, "requests", 0, "maximum number of requests; 0 for no limit")
	flags.IntVar(&opts.config.Concurrency, "concurrency", loadgen.DefaultConcurrency, "maximum number of requests in flight; with -rate 0, the number of workers")
	flags.DurationVar(&opts.config.RequestTimeout, "timeout", loadgen.DefaultRequestTimeout, "time limit of each request")
	flags.Float64Var(&opts.config.WriteRatio, "write-ratio", 0.3, "share of requests that write, from 0 to 1")
	flags.Float64Var(&opts.config.PatchRatio, "patch-ratio", 0.3, "share of writes that PATCH an existing note instead of creating one, from 0 to 1")
	flags.Float64Var(&opts.config.ListRatio, "list-ratio", 0.2, "share of reads that list the first page instead of reading one note, from 0 to 1")
	flags.Uint64Var(&opts.config.Seed, "seed", 1, "seed of the random choice of operations and notes")
	flags.BoolVar(&opts.verify, "verify", true, "read every acknowledged write back after the run")

	if err := flags.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return options{}, err
		}
		return options{}, errUsage
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected argument %q: loadgen takes only flags\n", flags.Arg(0))
		return options{}, errUsage
	}
	opts.config.BaseURL = opts.url
	return opts, nil
}

// run sends the load that args describe, prints the summary to stdout and
// returns an error when a request or the read-back failed.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}

	cfg := opts.config
	cfg.Client, err = loadgen.NewClient(opts.certDir, max(cfg.Concurrency, loadgen.DefaultConcurrency))
	if err != nil {
		return err
	}
	defer cfg.Client.CloseIdleConnections()

	fmt.Fprintf(stdout, "loadgen: %s %s %s, %.0f%% writes\n",
		cfg.BaseURL, describeLoad(cfg), describeBounds(cfg), cfg.WriteRatio*100)
	result, err := loadgen.Run(ctx, cfg)
	interrupted := err != nil && ctx.Err() != nil
	if err != nil && !interrupted {
		return err
	}

	printSummary(stdout, result, cfg.Rate == 0)
	if interrupted {
		fmt.Fprintln(stdout, "stopped early by a signal: the read-back of acknowledged writes was skipped")
	} else if opts.verify {
		if err := verify(ctx, stdout, cfg, result.Notes); err != nil {
			return err
		}
	}

	if failed := result.Failed(); failed > 0 {
		return fmt.Errorf("%d of %d requests failed", failed, result.Requests)
	}
	return nil
}

// describeLoad returns how requests start, such as "at 200 requests/s, at
// most 32 in flight".
func describeLoad(cfg loadgen.Config) string {
	concurrency := cfg.Concurrency
	if concurrency == 0 {
		concurrency = loadgen.DefaultConcurrency
	}
	if cfg.Rate == 0 {
		return fmt.Sprintf("in a closed loop of %d workers", concurrency)
	}
	return fmt.Sprintf("at %g requests/s, at most %d in flight", cfg.Rate, concurrency)
}

// describeBounds returns how the run ends, such as "for 30s".
func describeBounds(cfg loadgen.Config) string {
	switch {
	case cfg.Duration > 0 && cfg.Requests > 0:
		return fmt.Sprintf("for %v or %d requests, whichever ends first", cfg.Duration, cfg.Requests)
	case cfg.Requests > 0:
		return fmt.Sprintf("for %d requests", cfg.Requests)
	default:
		return fmt.Sprintf("for %v", cfg.Duration)
	}
}

func printSummary(w io.Writer, r loadgen.Result, closedLoop bool) {
	latencyStart := "each request's scheduled start"
	if closedLoop {
		latencyStart = "each request's start"
	}

	fmt.Fprintf(w, "requests:   %d in %v (%.1f/s)\n", r.Requests, r.Elapsed.Round(time.Millisecond), r.RequestsPerSecond)
	fmt.Fprintf(w, "operations: create %d, patch %d, get %d, list %d\n",
		r.Operations[loadgen.OpCreate], r.Operations[loadgen.OpPatch], r.Operations[loadgen.OpGet], r.Operations[loadgen.OpList])
	fmt.Fprintf(w, "latency:    p50 %v, p90 %v, p99 %v, max %v (from %s)\n",
		round(r.Latency.P50), round(r.Latency.P90), round(r.Latency.P99), round(r.Latency.Max), latencyStart)

	fmt.Fprintf(w, "failures:   %d\n", r.Failed())
	for _, kind := range slices.Sorted(maps.Keys(r.Failures)) {
		fmt.Fprintf(w, "  %-18s %d\n", kind, r.Failures[kind])
	}
	for _, example := range r.FailureExamples {
		fmt.Fprintf(w, "  example: %s\n", example)
	}
}

func verify(ctx context.Context, w io.Writer, cfg loadgen.Config, notes []loadgen.Note) error {
	start := time.Now()
	if err := loadgen.Verify(ctx, cfg.Client, cfg.BaseURL, notes); err != nil {
		return fmt.Errorf("read-back of acknowledged writes failed: %w", err)
	}
	fmt.Fprintf(w, "read-back:  all %d acknowledged notes hold their last written content (%v)\n",
		len(notes), time.Since(start).Round(time.Millisecond))
	return nil
}

// round keeps three significant digits of a latency for display.
func round(d time.Duration) time.Duration {
	switch {
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}
