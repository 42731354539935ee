package handlers

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/google/uuid"

	"example.com/rotor/internal/tlsx"
)

// RequestIDHeader is the response header that carries the request id.
const RequestIDHeader = "X-Request-Id"

type contextKey int

const (
	requestIDKey contextKey = iota
	identityKey
)

// RequestIDFromContext returns the id that New gives each request, or "" for
// a context that did not pass through it.
func RequestIDFromContext(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// IdentityFromContext returns the client identity asserted by the verified
// client certificate (see tlsx.ClientIdentity), or "" when the request has
// no verified certificate or the certificate asserts no identity.
func IdentityFromContext(ctx context.Context) string {
	identity, _ := ctx.Value(identityKey).(string)
	return identity
}

// setRequestID gives each request a new random id and returns it in the
// RequestIDHeader response header. An X-Request-Id header sent by the client
// is ignored, so that every id in the logs is unique and made by the server.
func setRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := uuid.NewString()
		w.Header().Set(RequestIDHeader, id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
	})
}

// resolveIdentity stores the client identity in the request context, for the
// access log and for requireIdentity. It rejects nothing.
func resolveIdentity(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if identity := verifiedIdentity(r.TLS); identity != "" {
			r = r.WithContext(context.WithValue(r.Context(), identityKey, identity))
		}
		next.ServeHTTP(w, r)
	})
}

// verifiedIdentity returns the identity of the leaf of the first verified
// chain. It ignores PeerCertificates, because only VerifiedChains proves that
// the TLS layer checked the certificate against the trusted client CAs.
func verifiedIdentity(state *tls.ConnectionState) string {
	if state == nil || len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return ""
	}
	return tlsx.ClientIdentity(state.VerifiedChains[0][0])
}

// requireIdentity rejects requests without a client identity with 401. The TLS
// listener normally rejects such clients during the handshake, so this is
// the second line of defence, for instance behind a misconfigured listener.
//
// RFC 9110 requires a WWW-Authenticate challenge on 401 responses, but no
// scheme is registered for TLS client certificates, so none is sent.
func requireIdentity(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if IdentityFromContext(r.Context()) == "" {
				err := newAPIError(kindUnauthenticated, "Connect with a client certificate that a trusted CA signed and that names the client in a URI SAN, DNS SAN or common name.")
				writeError(w, r, logger, err)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// observe writes one access log line at Info and updates the metrics for
// each request. It logs no bodies and no headers.
func observe(logger *slog.Logger, m *httpMetrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			recorder := middleware.NewWrapResponseWriter(w, r.ProtoMajor)

			next.ServeHTTP(recorder, r)

			duration := time.Since(start)
			status := recorder.Status()
			if status == 0 {
				// net/http sends 200 for a handler that writes nothing.
				status = http.StatusOK
			}
			route := routeLabel(r)
			m.observe(route, r.Method, status, duration)

			logger.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("method", r.Method),
				slog.String("route", route),
				slog.Int("status", status),
				slog.Duration("duration", duration),
				slog.Int("bytes", recorder.BytesWritten()),
				slog.String("client_identity", IdentityFromContext(r.Context())),
				slog.String("request_id", RequestIDFromContext(r.Context())),
			)
		})
	}
}

// unmatchedRoute is the route label of requests that match no route, so
// that raw paths never become log fields or metric labels.
const unmatchedRoute = "unmatched"

// routeLabel returns the chi route pattern that matched r, such as
// "/v1/notes/{id}", or unmatchedRoute for a request that no route serves,
// which includes every 404 and 405 response. chi fills the route context
// while it routes, so middleware must call this after the next handler
// returns.
func routeLabel(r *http.Request) string {
	if pattern := chi.RouteContext(r.Context()).RoutePattern(); pattern != "" {
		return pattern
	}
	return unmatchedRoute
}

// recoverPanics turns a panic in a handler into a 500 problem and an Error
// log line with the stack. A panic with http.ErrAbortHandler is passed on,
// because net/http uses it to abort a response on purpose.
func recoverPanics(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			recorder := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			defer func() {
				recovered := recover()
				if recovered == nil {
					return
				}
				if recovered == http.ErrAbortHandler {
					panic(recovered)
				}

				err := fmt.Errorf("panic: %v\n%s", recovered, debug.Stack())
				if recorder.Status() != 0 {
					// The status line has gone out, so a problem can no longer be
					// sent. Aborting the response shows the client that the body
					// is incomplete.
					logAPIError(r, logger, &apiError{kind: kindInternal, detail: internalDetail, cause: err})
					panic(http.ErrAbortHandler)
				}
				writeError(recorder, r, logger, err)
			}()

			next.ServeHTTP(recorder, r)
		})
	}
}
