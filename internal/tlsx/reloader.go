package tlsx

import (
	"cmp"
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
)

// Reloadable is a certificate source that a Reloader keeps current.
// *Source and *ClientSource implement it.
type Reloadable interface {
	// Reload reads the files again and replaces the state in use only when
	// they pass every check. It reports whether their content differed from
	// the state in use. On error the state in use stays.
	Reload() (changed bool, err error)

	// Leaf returns the leaf certificate in use.
	Leaf() *x509.Certificate

	// Files returns the paths that Reload reads.
	Files() []string
}

// WatchMode selects how a Reloader notices that the files changed.
type WatchMode string

const (
	// WatchFSNotify watches the directories of the files with inotify (or
	// the platform's equivalent, through fsnotify) and also reads the files
	// every PollInterval, which catches changes that the watch cannot see.
	WatchFSNotify WatchMode = "fsnotify"

	// WatchPoll only reads the files every PollInterval.
	WatchPoll WatchMode = "poll"
)

// Defaults of ReloaderConfig.
const (
	DefaultPollInterval = 10 * time.Second
	DefaultDebounce     = 100 * time.Millisecond
	DefaultRetryDelay   = time.Second
)

// maxRetryDelay caps the doubling of ReloaderConfig.RetryDelay after
// consecutive failures, unless RetryDelay itself is longer.
const maxRetryDelay = time.Minute

// ReloaderConfig configures NewReloader. The zero value watches with
// fsnotify and uses the defaults above.
type ReloaderConfig struct {
	// Mode is WatchFSNotify or WatchPoll. Empty means WatchFSNotify.
	Mode WatchMode

	// PollInterval is how often the files are read again whatever the
	// mode. With WatchFSNotify it catches what the watch misses: a
	// directory symlink swapped above the watched directory, a watch lost
	// because its directory was deleted, a full event queue. Reading
	// unchanged files costs a read and a SHA-256 of a few kilobytes. Zero
	// means DefaultPollInterval.
	PollInterval time.Duration

	// Debounce is how long the Reloader waits after the last event of a
	// burst before it reads the files. One kubelet update makes about five
	// events. Zero means DefaultDebounce.
	Debounce time.Duration

	// RetryDelay is how long the Reloader waits after a failed reload
	// before it tries again without any event, so that a tls.key written
	// shortly after tls.crt is picked up. The delay doubles after each
	// consecutive failure, up to a minute. Zero means DefaultRetryDelay.
	RetryDelay time.Duration

	// Logger receives successful reloads (Info), failed reloads (Error,
	// once per distinct error until a reload succeeds) and problems with
	// the watch (Warn). Nil discards them.
	Logger *slog.Logger

	// Registerer receives the metrics rotor_tls_reloads_total,
	// rotor_tls_reload_failures_total and
	// rotor_tls_certificate_expiry_seconds. Nil means
	// prometheus.DefaultRegisterer.
	Registerer prometheus.Registerer
}

// Reloader reloads a Reloadable when its files change, for example when the
// kubelet swaps the ..data symlink of a mounted Secret or when a tool
// rewrites tls.crt and tls.key in place. Create it with NewReloader and
// start it with Run.
type Reloader struct {
	source       Reloadable
	mode         WatchMode
	pollInterval time.Duration
	debounce     time.Duration
	retryDelay   time.Duration
	log          *slog.Logger

	// dirs are the cleaned directories of source.Files(), each once. names
	// are the base names of source.Files().
	dirs  []string
	names map[string]bool

	reloads  prometheus.Counter
	failures prometheus.Counter
}

// NewReloader returns a Reloader for source and registers its metrics. It
// returns an error for an unknown mode, a negative duration, or metrics
// that are already registered on the Registerer. Nothing is watched until
// Run.
func NewReloader(source Reloadable, cfg ReloaderConfig) (*Reloader, error) {
	r := &Reloader{
		source:       source,
		mode:         cfg.Mode,
		pollInterval: cmp.Or(cfg.PollInterval, DefaultPollInterval),
		debounce:     cmp.Or(cfg.Debounce, DefaultDebounce),
		retryDelay:   cmp.Or(cfg.RetryDelay, DefaultRetryDelay),
		log:          cfg.Logger,
		names:        make(map[string]bool),
	}
	if r.mode == "" {
		r.mode = WatchFSNotify
	}
	if r.mode != WatchFSNotify && r.mode != WatchPoll {
		return nil, fmt.Errorf("invalid watch mode %q: want %q or %q", r.mode, WatchFSNotify, WatchPoll)
	}
	if r.pollInterval < 0 || r.debounce < 0 || r.retryDelay < 0 {
		return nil, fmt.Errorf("invalid reloader durations (poll interval %s, debounce %s, retry delay %s): want zero for the default or a positive duration",
			r.pollInterval, r.debounce, r.retryDelay)
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}

	for _, file := range source.Files() {
		dir := filepath.Clean(filepath.Dir(file))
		if !slices.Contains(r.dirs, dir) {
			r.dirs = append(r.dirs, dir)
		}
		r.names[filepath.Base(file)] = true
	}

	registerer := cfg.Registerer
	if registerer == nil {
		registerer = prometheus.DefaultRegisterer
	}
	if err := r.registerMetrics(registerer); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Reloader) registerMetrics(registerer prometheus.Registerer) error {
	r.reloads = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "rotor_tls_reloads_total",
		Help: "Reloads that replaced the certificate or CA pool in use.",
	})
	r.failures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "rotor_tls_reload_failures_total",
		Help: "Reload attempts that failed; the last good certificate and CA pool stay in use.",
	})
	expiry := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rotor_tls_certificate_expiry_seconds",
		Help: "Seconds until the NotAfter of the certificate in use; negative once it has expired.",
	}, func() float64 {
		return time.Until(r.source.Leaf().NotAfter).Seconds()
	})

	for _, collector := range []prometheus.Collector{r.reloads, r.failures, expiry} {
		if err := registerer.Register(collector); err != nil {
			return fmt.Errorf("register TLS reloader metrics: %w", err)
		}
	}
	return nil
}

// Run watches and reloads until ctx ends. It starts no goroutine that
// outlives it: fsnotify's reader goroutine ends when Run closes the watch.
// When the watch cannot start, or a directory cannot be watched, Run logs a
// warning, polls, and tries to add the watch again at each poll. Call Run
// once per Reloader.
func (r *Reloader) Run(ctx context.Context) {
	var watch *dirWatch
	if r.mode == WatchFSNotify {
		watch = startDirWatch(r.dirs, r.log)
		defer watch.close()
	}
	events, watchErrors := watch.channels()
	r.log.Info("watching TLS certificate files", "mode", r.mode, "dirs", r.dirs, "poll_interval", r.pollInterval,
		"serial", serial(r.source.Leaf()), "not_after", r.source.Leaf().NotAfter)

	poll := time.NewTicker(r.pollInterval)
	defer poll.Stop()
	debounce := newStoppedTimer()
	defer debounce.Stop()
	retry := newStoppedTimer()
	defer retry.Stop()
	attempts := &reloadAttempts{}

	// A change between Load and the start of the watch made no event that
	// the watch could see, so the files are read once now.
	r.reload(attempts, retry)

	for {
		select {
		case <-ctx.Done():
			return

		case event, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if r.triggers(event) {
				debounce.Reset(r.debounce)
			}

		case err, ok := <-watchErrors:
			if !ok {
				watchErrors = nil
				continue
			}
			// An error such as a full event queue means events were lost.
			r.log.Warn("watching the certificate directories failed; reading the files again", "dirs", r.dirs, "err", err)
			debounce.Reset(r.debounce)

		case <-debounce.C:
			r.reload(attempts, retry)

		case <-retry.C:
			r.reload(attempts, retry)

		case <-poll.C:
			watch.addMissing()
			r.reload(attempts, retry)
		}
	}
}

// triggers reports whether event can mean that a file changed. That is a
// change to one of the files by name, to a kubelet entry such as ..data or
// a timestamped directory (every kubelet name starts with ".."), or to a
// watched directory itself. Events that only change permissions do not
// count.
func (r *Reloader) triggers(event fsnotify.Event) bool {
	if event.Op == fsnotify.Chmod {
		return false
	}
	base := filepath.Base(event.Name)
	return r.names[base] || strings.HasPrefix(base, "..") || slices.Contains(r.dirs, filepath.Clean(event.Name))
}

// reloadAttempts is the failure state of one Run.
type reloadAttempts struct {
	failed     int    // consecutive failed reloads
	lastLogged string // text of the last error logged, "" after a success
}

// reload calls Reload once, logs and counts the outcome, and arms retry
// after a failure.
func (r *Reloader) reload(attempts *reloadAttempts, retry *time.Timer) {
	previous := r.source.Leaf()
	changed, err := r.source.Reload()

	if err != nil {
		r.failures.Inc()
		attempts.failed++
		delay := r.nextRetryDelay(attempts.failed)
		retry.Reset(delay)

		// Polling repeats the same failure until the files change, so
		// each distinct error is logged once and the counter keeps count.
		if text := err.Error(); text != attempts.lastLogged {
			attempts.lastLogged = text
			r.log.Error("reloading TLS certificate failed; the last good certificate stays in use",
				"err", err, "serial", serial(previous), "retry_in", delay)
		}
		return
	}

	retry.Stop()
	attempts.failed, attempts.lastLogged = 0, ""
	if !changed {
		return
	}

	r.reloads.Inc()
	leaf := r.source.Leaf()
	r.log.Info("reloaded TLS certificate",
		"serial", serial(leaf),
		"subject", leaf.Subject.String(),
		"not_after", leaf.NotAfter,
		"previous_serial", serial(previous))
}

// nextRetryDelay returns RetryDelay doubled for each failure after the
// first, capped at maxRetryDelay or RetryDelay, whichever is longer.
func (r *Reloader) nextRetryDelay(failed int) time.Duration {
	limit := max(maxRetryDelay, r.retryDelay)
	delay := r.retryDelay
	for i := 1; i < failed && delay < limit; i++ {
		delay *= 2
	}
	return min(delay, limit)
}

// serial returns the serial number in hexadecimal, the form that rotor logs
// at start-up.
func serial(cert *x509.Certificate) string {
	return cert.SerialNumber.Text(16)
}

// newStoppedTimer returns a timer that fires only after Reset. Since Go
// 1.23, Reset and Stop leave no stale value in the channel.
func newStoppedTimer() *time.Timer {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	return timer
}
