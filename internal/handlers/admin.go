package handlers

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultReadyTimeout is the time that GET /readyz gives AdminConfig.Ready
// when AdminConfig.ReadyTimeout is zero.
const DefaultReadyTimeout = 2 * time.Second

// AdminConfig configures the handler that NewAdmin returns.
type AdminConfig struct {
	// Ready reports whether the service can serve requests, for instance
	// by pinging the database, and returns nil when it can. Its context
	// ends after ReadyTimeout. The error text is sent verbatim in the 503
	// body of an unauthenticated listener, so it must not contain secrets
	// such as connection strings with passwords. Nil means always ready.
	Ready func(context.Context) error

	// ReadyTimeout limits each call of Ready. Zero means
	// DefaultReadyTimeout.
	ReadyTimeout time.Duration

	// Gatherer provides the metrics served on /metrics. Nil means
	// prometheus.DefaultGatherer.
	Gatherer prometheus.Gatherer

	// Logger receives readiness changes and metric gathering errors. Nil
	// discards them.
	Logger *slog.Logger
}

// NewAdmin returns the handler of the admin listener, which serves plain
// HTTP without authentication:
//
//	GET /healthz  200 "ok" while the process runs
//	GET /readyz   200 "ready", or 503 "not ready: " and the error of Ready
//	GET /metrics  the Prometheus metrics of Gatherer
func NewAdmin(cfg AdminConfig) http.Handler {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	gatherer := cfg.Gatherer
	if gatherer == nil {
		gatherer = prometheus.DefaultGatherer
	}
	ready := &readiness{check: cfg.Ready, timeout: cfg.ReadyTimeout, logger: logger}
	if ready.check == nil {
		ready.check = func(context.Context) error { return nil }
	}
	if ready.timeout <= 0 {
		ready.timeout = DefaultReadyTimeout
	}

	router := chi.NewRouter()
	router.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	router.Get("/readyz", ready.ServeHTTP)
	router.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(logger.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	}))
	return router
}

// readiness serves GET /readyz. It logs only when the result changes, so a
// probe every few seconds does not repeat the same line.
type readiness struct {
	check   func(context.Context) error
	timeout time.Duration
	logger  *slog.Logger
	failing atomic.Bool
}

func (rd *readiness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), rd.timeout)
	defer cancel()
	err := rd.check(ctx)

	rd.logChange(r.Context(), err)
	if err != nil {
		writeText(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
		return
	}
	writeText(w, http.StatusOK, "ready")
}

func (rd *readiness) logChange(ctx context.Context, err error) {
	failing := err != nil
	if rd.failing.Swap(failing) == failing {
		return
	}
	if failing {
		rd.logger.WarnContext(ctx, "readiness check failed", slog.Any("error", err))
		return
	}
	rd.logger.InfoContext(ctx, "readiness check passed again")
}

func writeText(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	// Probes must see the current state, never a cached one.
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)

	// Write errors are ignored because they mean that the client has
	// disconnected.
	_, _ = w.Write([]byte(text))
}
