package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"example.com/rotor/internal/notes"
)

// Problem types: the stable "type" member of every error response. Clients
// should branch on these, because titles and details may be reworded.
const (
	ProblemMalformedJSON        = "urn:rotor:problem:malformed-json"
	ProblemUnknownField         = "urn:rotor:problem:unknown-field"
	ProblemInvalidParameter     = "urn:rotor:problem:invalid-parameter"
	ProblemInvalidID            = "urn:rotor:problem:invalid-id"
	ProblemUnauthenticated      = "urn:rotor:problem:unauthenticated"
	ProblemForbidden            = "urn:rotor:problem:forbidden"
	ProblemNotFound             = "urn:rotor:problem:not-found"
	ProblemMethodNotAllowed     = "urn:rotor:problem:method-not-allowed"
	ProblemBodyTooLarge         = "urn:rotor:problem:body-too-large"
	ProblemUnsupportedMediaType = "urn:rotor:problem:unsupported-media-type"
	ProblemValidation           = "urn:rotor:problem:validation"
	ProblemClientClosedRequest  = "urn:rotor:problem:client-closed-request"
	ProblemInternal             = "urn:rotor:problem:internal"
	ProblemUnavailable          = "urn:rotor:problem:unavailable"
)

// StatusClientClosedRequest is the status recorded when the client cancels a
// request before the response is ready. The code is an nginx convention, not
// a standard one. The client never reads it. It exists so that the access log
// and the metrics do not count the request as a server failure.
const StatusClientClosedRequest = 499

// problemKind fixes the status and title that belong to a problem type.
type problemKind struct {
	typeURI string
	title   string
	status  int
}

var (
	kindMalformedJSON        = problemKind{ProblemMalformedJSON, "Malformed JSON body", http.StatusBadRequest}
	kindUnknownField         = problemKind{ProblemUnknownField, "Unknown field", http.StatusBadRequest}
	kindInvalidParameter     = problemKind{ProblemInvalidParameter, "Invalid query parameter", http.StatusBadRequest}
	kindInvalidID            = problemKind{ProblemInvalidID, "Invalid note id", http.StatusBadRequest}
	kindUnauthenticated      = problemKind{ProblemUnauthenticated, "Client certificate required", http.StatusUnauthorized}
	kindForbidden            = problemKind{ProblemForbidden, "Client not allowed", http.StatusForbidden}
	kindNotFound             = problemKind{ProblemNotFound, "Not found", http.StatusNotFound}
	kindMethodNotAllowed     = problemKind{ProblemMethodNotAllowed, "Method not allowed", http.StatusMethodNotAllowed}
	kindBodyTooLarge         = problemKind{ProblemBodyTooLarge, "Request body too large", http.StatusRequestEntityTooLarge}
	kindUnsupportedMediaType = problemKind{ProblemUnsupportedMediaType, "Unsupported media type", http.StatusUnsupportedMediaType}
	kindValidation           = problemKind{ProblemValidation, "Invalid note fields", http.StatusUnprocessableEntity}
	kindClientClosedRequest  = problemKind{ProblemClientClosedRequest, "Client closed request", StatusClientClosedRequest}
	kindInternal             = problemKind{ProblemInternal, "Internal server error", http.StatusInternalServerError}
	kindUnavailable          = problemKind{ProblemUnavailable, "Service temporarily unavailable", http.StatusServiceUnavailable}
)

// internalDetail is the whole detail of every 500 response, so that no
// internal error text reaches the client.
const internalDetail = "The server could not complete the request. Quote the request_id when you report it."

// unavailableDetail is the detail of every 503 response. A write that gets
// it may or may not have been stored, so the client should read before it
// writes again.
const unavailableDetail = "The database could not be reached for a moment. Retry the request; after a failed write, check whether it was stored."

// apiError is the error type of the API. The client receives it as an
// RFC 9457 problem: handlers return it, and writeError sends it.
type apiError struct {
	kind   problemKind
	detail string
	fields []notes.FieldError // the "errors" member of a validation problem
	cause  error              // logged, never sent to the client
}

// newAPIError returns an error of the kind whose detail is format applied to
// args, as fmt.Sprintf does.
func newAPIError(kind problemKind, format string, args ...any) *apiError {
	return &apiError{kind: kind, detail: fmt.Sprintf(format, args...)}
}

func (e *apiError) Error() string {
	if e.cause != nil {
		return e.kind.title + ": " + e.detail + ": " + e.cause.Error()
	}
	return e.kind.title + ": " + e.detail
}

func (e *apiError) Unwrap() error { return e.cause }

// problemBody is the JSON form of a problem (RFC 9457) with two extension
// members: request_id, and errors for validation problems.
type problemBody struct {
	Type      string             `json:"type"`
	Title     string             `json:"title"`
	Status    int                `json:"status"`
	Detail    string             `json:"detail,omitempty"`
	RequestID string             `json:"request_id,omitempty"`
	Errors    []notes.FieldError `json:"errors,omitempty"`
}

// writeError sends err to the client as an application/problem+json response.
// An *apiError, notes.ErrNotFound and *notes.ValidationError, wrapped or not,
// keep their meaning. Any other error gets a generic 500 body and is logged
// at Error with the request id. Client mistakes are logged at Debug only.
func writeError(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	apiErr := toAPIError(r, err)
	logAPIError(r, logger, apiErr)
	writeProblem(w, r, apiErr)
}

// toAPIError maps err to the problem that the client receives.
func toAPIError(r *http.Request, err error) *apiError {
	if apiErr, ok := errors.AsType[*apiError](err); ok {
		return apiErr
	}

	if invalid, ok := errors.AsType[*notes.ValidationError](err); ok {
		return &apiError{
			kind:   kindValidation,
			detail: "The note breaks the field limits listed in errors.",
			fields: invalid.Fields,
			cause:  err,
		}
	}

	if errors.Is(err, notes.ErrNotFound) {
		return &apiError{kind: kindNotFound, detail: "No note with this id exists.", cause: err}
	}

	if errors.Is(err, notes.ErrUnavailable) {
		return &apiError{kind: kindUnavailable, detail: unavailableDetail, cause: err}
	}

	// A store call fails with context.Canceled when the client goes away.
	// Checking the request context distinguishes that from a cancellation
	// that started inside the server.
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return &apiError{kind: kindClientClosedRequest, detail: "The client closed the request.", cause: err}
	}

	return &apiError{kind: kindInternal, detail: internalDetail, cause: err}
}

// logAPIError logs server failures at Error with their cause and everything
// else at Debug, because the access log already records each request.
func logAPIError(r *http.Request, logger *slog.Logger, e *apiError) {
	attrs := []slog.Attr{
		slog.String("request_id", RequestIDFromContext(r.Context())),
		slog.String("method", r.Method),
		slog.String("route", routeLabel(r)),
		slog.Int("status", e.kind.status),
	}

	if e.kind.status >= http.StatusInternalServerError {
		attrs = append(attrs, slog.Any("error", e.cause))
		logger.LogAttrs(r.Context(), slog.LevelError, "request failed", attrs...)
		return
	}

	attrs = append(attrs, slog.String("problem", e.kind.typeURI), slog.String("detail", e.detail))
	logger.LogAttrs(r.Context(), slog.LevelDebug, "request rejected", attrs...)
}

// writeProblem encodes the problem as the response.
func writeProblem(w http.ResponseWriter, r *http.Request, e *apiError) {
	body := problemBody{
		Type:      e.kind.typeURI,
		Title:     e.kind.title,
		Status:    e.kind.status,
		Detail:    e.detail,
		RequestID: RequestIDFromContext(r.Context()),
		Errors:    e.fields,
	}

	w.Header().Set("Content-Type", "application/problem+json")
	if body.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(body.Status)

	// Write errors are ignored because they mean that the client has
	// disconnected.
	_ = json.NewEncoder(w).Encode(body)
}
