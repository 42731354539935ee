// Package handlers serves rotor's HTTP APIs: the notes API for the mutual
// TLS listener (New) and the health, readiness and metrics endpoints for the
// plain-HTTP admin listener (NewAdmin).
//
// Every error of the notes API is an RFC 9457 problem with the media type
// application/problem+json. Its "type" is one of the Problem constants, and
// it carries the request_id that also appears in the X-Request-Id header and
// in the logs.
package handlers

import (
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"example.com/rotor/internal/notes"
)

// Config configures the handler that New returns.
type Config struct {
	// Store keeps the notes. It is required.
	Store notes.Store

	// Logger receives the access log (Info), clients that AllowedClients
	// turns away (Warn), server failures (Error) and other rejected
	// requests (Debug). Nil discards them.
	Logger *slog.Logger

	// Registerer receives the HTTP metrics. Nil means
	// prometheus.DefaultRegisterer.
	Registerer prometheus.Registerer

	// AllowedClients lists the client identities that may call the notes
	// API; others get 403. The zero value allows every client with a
	// verified certificate.
	AllowedClients AllowList
}

// New returns the handler of the notes API:
//
//	POST   /v1/notes       create a note: 201 with the note and a Location header
//	GET    /v1/notes       list notes: 200 with {"items", "next_cursor"}
//	GET    /v1/notes/{id}  read a note: 200
//	PATCH  /v1/notes/{id}  update title and/or body: 200 with the note
//	DELETE /v1/notes/{id}  delete a note: 204
//
// GET /v1/notes takes limit, from 1 to notes.MaxPageSize with a default of
// notes.DefaultPageSize, and cursor, the next_cursor of the previous page.
//
// The owner of every note is the identity in the client certificate, so the
// handler must be served by a TLS listener that verifies client certificates.
// A request without a verified certificate gets 401, and one whose identity
// cfg.AllowedClients does not allow gets 403. Another client's note is not
// found by the store, so it gets 404.
//
// New panics if cfg.Store is nil or if its metrics are already registered on
// the Registerer, for instance by an earlier call with the same Registerer.
func New(cfg Config) http.Handler {
	if cfg.Store == nil {
		panic("handlers: Config.Store is nil")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	registerer := cfg.Registerer
	if registerer == nil {
		registerer = prometheus.DefaultRegisterer
	}

	router := chi.NewRouter()
	router.Use(
		setRequestID,
		resolveIdentity,
		observe(logger, newHTTPMetrics(registerer)),
		recoverPanics(logger),
	)
	router.NotFound(notFound(logger))
	router.MethodNotAllowed(methodNotAllowed(router, logger))

	api := &notesAPI{store: cfg.Store, logger: logger}
	router.Group(func(r chi.Router) {
		r.Use(requireIdentity(logger), authorizeIdentity(cfg.AllowedClients, logger))
		r.Post("/v1/notes", api.handle(api.createNote))
		r.Get("/v1/notes", api.handle(api.listNotes))
		r.Get("/v1/notes/{id}", api.handle(api.getNote))
		r.Patch("/v1/notes/{id}", api.handle(api.patchNote))
		r.Delete("/v1/notes/{id}", api.handle(api.deleteNote))
	})
	return router
}

// standardMethods are the request methods that RFC 9110 and RFC 5789 define.
var standardMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace,
}

func notFound(logger *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, logger, newAPIError(kindNotFound, "No route matches the path %q.", r.URL.Path))
	}
}

// methodNotAllowed responds with 405 and the Allow header that RFC 9110
// requires. chi passes the allowed methods only to its own 405 handler, so
// this one queries the router for the methods that match the path.
func methodNotAllowed(routes chi.Routes, logger *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// chi routes on the escaped path when it differs from the decoded one.
		path := r.URL.RawPath
		if path == "" {
			path = r.URL.Path
		}
		for _, method := range standardMethods {
			if routes.Match(chi.NewRouteContext(), method, path) {
				w.Header().Add("Allow", method)
			}
		}
		err := newAPIError(kindMethodNotAllowed, "The method %s is not allowed here. The Allow header lists the allowed methods.", r.Method)
		writeError(w, r, logger, err)
	}
}
