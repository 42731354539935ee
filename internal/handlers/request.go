package handlers

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"example.com/rotor/internal/notes"
)

// MaxBodyBytes is the largest request body that the API reads. A larger body
// gets a 413 problem.
const MaxBodyBytes = 1 << 20

// Media types of request bodies.
const (
	mediaTypeJSON       = "application/json"
	mediaTypeMergePatch = "application/merge-patch+json"
)

// decodeJSON decodes the request body, a single JSON object, into dst. The
// Content-Type must be one of mediaTypes, and the body must not be larger
// than MaxBodyBytes, contain members that dst lacks, or go on after the
// object. Every failure is an *apiError.
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any, mediaTypes ...string) error {
	if err := checkContentType(r, mediaTypes); err != nil {
		return err
	}

	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	decoder := json.NewDecoder(r.Body)
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(dst); err != nil {
		return decodeError(err)
	}

	// A second value, or anything else after the object, makes the body
	// ambiguous. Token returns io.EOF only when nothing but white space is
	// left.
	if _, err := decoder.Token(); !errors.Is(err, io.EOF) {
		if tooLarge, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return bodyTooLarge(tooLarge)
		}
		return newAPIError(kindMalformedJSON, "The request body must contain one JSON object and nothing after it.")
	}
	return nil
}

// checkContentType accepts a Content-Type of one of mediaTypes. Parameters
// are allowed, but a charset other than UTF-8 is not, because JSON text
// exchanged between systems must be UTF-8 (RFC 8259, section 8.1).
func checkContentType(r *http.Request, mediaTypes []string) error {
	want := strings.Join(mediaTypes, " or ")
	header := r.Header.Get("Content-Type")
	if header == "" {
		return newAPIError(kindUnsupportedMediaType, "The Content-Type header is missing. Send %s.", want)
	}

	mediaType, params, err := mime.ParseMediaType(header)
	if err != nil {
		return newAPIError(kindUnsupportedMediaType, "The Content-Type header is invalid. Send %s.", want)
	}
	if charset, ok := params["charset"]; ok && !strings.EqualFold(charset, "utf-8") {
		return newAPIError(kindUnsupportedMediaType, "The charset %q is not supported. Send UTF-8.", charset)
	}
	for _, allowed := range mediaTypes {
		if mediaType == allowed {
			return nil
		}
	}
	return newAPIError(kindUnsupportedMediaType, "The media type %q is not supported. Send %s.", mediaType, want)
}

// decodeError maps an error of json.Decoder.Decode to an *apiError.
func decodeError(err error) error {
	if tooLarge, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return bodyTooLarge(tooLarge)
	}
	if syntaxErr, ok := errors.AsType[*json.SyntaxError](err); ok {
		return newAPIError(kindMalformedJSON, "The request body is not valid JSON at byte %d: %s.", syntaxErr.Offset, syntaxErr)
	}
	if typeErr, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if typeErr.Field == "" {
			return newAPIError(kindMalformedJSON, "The request body must be a JSON object, not a JSON %s.", typeErr.Value)
		}
		return newAPIError(kindMalformedJSON, "The member %q cannot be a JSON %s.", typeErr.Field, typeErr.Value)
	}

	// encoding/json reports an unknown member only as an error whose text
	// starts with this prefix, followed by the quoted member name. The
	// "unknown field" cases of TestRequestErrors fail if the text changes.
	if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return newAPIError(kindUnknownField, "The member %s is not part of a note.", field)
	}

	switch {
	case errors.Is(err, io.EOF):
		return newAPIError(kindMalformedJSON, "The request body is empty. Send a JSON object.")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return newAPIError(kindMalformedJSON, "The request body ends in the middle of a JSON value.")
	}

	// Anything else is a failure to read the body, such as a client that
	// disconnected while sending it.
	return &apiError{kind: kindMalformedJSON, detail: "The request body could not be read.", cause: err}
}

func bodyTooLarge(err *http.MaxBytesError) error {
	return newAPIError(kindBodyTooLarge, "The request body is larger than %d bytes.", err.Limit)
}

// parseNoteID returns the {id} path parameter as a UUID.
func parseNoteID(r *http.Request) (uuid.UUID, error) {
	raw := chi.URLParam(r, "id")
	id, err := uuid.Parse(raw)
	if err != nil {
		return uuid.Nil, newAPIError(kindInvalidID, "The note id %q is not a UUID.", raw)
	}
	return id, nil
}

// listQuery is a parsed page request of GET /v1/notes.
type listQuery struct {
	limit int
	after uuid.UUID // uuid.Nil for the first page
}

// parseListQuery reads the limit and cursor query parameters. An empty or
// missing limit means notes.DefaultPageSize, and an empty or missing cursor
// means the first page.
func parseListQuery(r *http.Request) (listQuery, error) {
	query := r.URL.Query()
	page := listQuery{limit: notes.DefaultPageSize}

	if raw := query.Get("limit"); raw != "" {
		limit, err := strconv.Atoi(raw)
		if err != nil || limit < 1 || limit > notes.MaxPageSize {
			return listQuery{}, newAPIError(kindInvalidParameter,
				"The limit %q is invalid. Send an integer from 1 to %d.", raw, notes.MaxPageSize)
		}
		page.limit = limit
	}

	if raw := query.Get("cursor"); raw != "" {
		after, err := decodeCursor(raw)
		if err != nil {
			return listQuery{}, newAPIError(kindInvalidParameter,
				"The cursor is invalid. Send the next_cursor of an earlier page unchanged.")
		}
		page.after = after
	}
	return page, nil
}

// cursorEncoding encodes a cursor for use in a query string without
// escaping. Strict decoding gives each id a single valid cursor.
var cursorEncoding = base64.RawURLEncoding.Strict()

// encodeCursor returns the cursor of the page that starts after the note
// with the id. Clients treat it as opaque, so its format may change.
func encodeCursor(after uuid.UUID) string {
	return cursorEncoding.EncodeToString(after[:])
}

func decodeCursor(cursor string) (uuid.UUID, error) {
	raw, err := cursorEncoding.DecodeString(cursor)
	if err != nil {
		return uuid.Nil, err
	}
	if len(raw) != len(uuid.UUID{}) {
		return uuid.Nil, fmt.Errorf("cursor has %d bytes, want %d", len(raw), len(uuid.UUID{}))
	}
	return uuid.UUID(raw), nil
}
