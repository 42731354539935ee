package handlers

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"

	"example.com/rotor/internal/notes"
)

// notesAPI serves the /v1/notes routes. Every handler acts for the owner
// returned by IdentityFromContext, which requireIdentity guarantees to be
// set.
type notesAPI struct {
	store  notes.Store
	logger *slog.Logger
}

// apiHandler is a handler that returns its failure instead of writing it.
type apiHandler func(w http.ResponseWriter, r *http.Request) error

// handle adapts h to http.HandlerFunc, sending any error that h returns with
// writeError.
func (a *notesAPI) handle(h apiHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			writeError(w, r, a.logger, err)
		}
	}
}

// noteJSON is the JSON form of a note. The owner is left out because it is
// always the client that sent the request.
type noteJSON struct {
	ID        uuid.UUID `json:"id"`
	Title     string    `json:"title"`
	Body      string    `json:"body"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func toNoteJSON(n notes.Note) noteJSON {
	return noteJSON{
		ID:        n.ID,
		Title:     n.Title,
		Body:      n.Body,
		CreatedAt: n.CreatedAt.UTC(),
		UpdatedAt: n.UpdatedAt.UTC(),
	}
}

// notePageJSON is one page of GET /v1/notes. NextCursor is empty on the
// last page.
type notePageJSON struct {
	Items      []noteJSON `json:"items"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

type createRequest struct {
	Title string `json:"title"`
	Body  string `json:"body"`
}

// patchRequest is the body of PATCH /v1/notes/{id}. A member that is absent
// is left unchanged.
type patchRequest struct {
	Title optionalString `json:"title"`
	Body  optionalString `json:"body"`
}

// optionalString is a JSON string member that records whether it was present
// and whether it was null. encoding/json leaves it zero when the member is
// absent.
type optionalString struct {
	present bool
	null    bool
	value   string
}

func (s *optionalString) UnmarshalJSON(data []byte) error {
	s.present = true
	if string(data) == "null" {
		s.null = true
		return nil
	}
	return json.Unmarshal(data, &s.value)
}

// toPatch returns the notes.Patch that the request describes, or a
// *notes.ValidationError. In JSON Merge Patch (RFC 7396) null removes a
// member, but a note has no optional members, so null is rejected.
func (p patchRequest) toPatch() (notes.Patch, error) {
	var nulls []notes.FieldError
	if p.Title.null {
		nulls = append(nulls, notes.FieldError{Field: "title", Reason: "must not be null"})
	}
	if p.Body.null {
		nulls = append(nulls, notes.FieldError{Field: "body", Reason: "must not be null"})
	}
	if len(nulls) > 0 {
		return notes.Patch{}, &notes.ValidationError{Fields: nulls}
	}

	var patch notes.Patch
	if p.Title.present {
		patch.Title = &p.Title.value
	}
	if p.Body.present {
		patch.Body = &p.Body.value
	}
	if err := patch.Validate(); err != nil {
		return notes.Patch{}, err
	}
	return patch, nil
}

// createNote serves POST /v1/notes.
func (a *notesAPI) createNote(w http.ResponseWriter, r *http.Request) error {
	var req createRequest
	if err := decodeJSON(w, r, &req, mediaTypeJSON); err != nil {
		return err
	}
	if err := notes.ValidateNew(req.Title, req.Body); err != nil {
		return err
	}

	note, err := a.store.Create(r.Context(), IdentityFromContext(r.Context()), req.Title, req.Body)
	if err != nil {
		return fmt.Errorf("create note: %w", err)
	}

	w.Header().Set("Location", "/v1/notes/"+note.ID.String())
	return writeJSON(w, http.StatusCreated, toNoteJSON(note))
}

// listNotes serves GET /v1/notes, one page of the client's notes in creation
// order.
func (a *notesAPI) listNotes(w http.ResponseWriter, r *http.Request) error {
	query, err := parseListQuery(r)
	if err != nil {
		return err
	}

	// Asking for one note more than the limit shows whether another page
	// exists.
	found, err := a.store.List(r.Context(), IdentityFromContext(r.Context()), query.after, query.limit+1)
	if err != nil {
		return fmt.Errorf("list notes: %w", err)
	}

	page := notePageJSON{Items: make([]noteJSON, 0, min(len(found), query.limit))}
	if len(found) > query.limit {
		found = found[:query.limit]
		page.NextCursor = encodeCursor(found[len(found)-1].ID)
	}
	for _, note := range found {
		page.Items = append(page.Items, toNoteJSON(note))
	}
	return writeJSON(w, http.StatusOK, page)
}

// getNote serves GET /v1/notes/{id}.
func (a *notesAPI) getNote(w http.ResponseWriter, r *http.Request) error {
	id, err := parseNoteID(r)
	if err != nil {
		return err
	}

	note, err := a.store.Get(r.Context(), IdentityFromContext(r.Context()), id)
	if err != nil {
		return fmt.Errorf("get note %s: %w", id, err)
	}
	return writeJSON(w, http.StatusOK, toNoteJSON(note))
}

// patchNote serves PATCH /v1/notes/{id}.
func (a *notesAPI) patchNote(w http.ResponseWriter, r *http.Request) error {
	id, err := parseNoteID(r)
	if err != nil {
		return err
	}
	var req patchRequest
	if err := decodeJSON(w, r, &req, mediaTypeJSON, mediaTypeMergePatch); err != nil {
		return err
	}
	patch, err := req.toPatch()
	if err != nil {
		return err
	}

	note, err := a.store.Update(r.Context(), IdentityFromContext(r.Context()), id, patch)
	if err != nil {
		return fmt.Errorf("update note %s: %w", id, err)
	}
	return writeJSON(w, http.StatusOK, toNoteJSON(note))
}

// deleteNote serves DELETE /v1/notes/{id}.
func (a *notesAPI) deleteNote(w http.ResponseWriter, r *http.Request) error {
	id, err := parseNoteID(r)
	if err != nil {
		return err
	}

	if err := a.store.Delete(r.Context(), IdentityFromContext(r.Context()), id); err != nil {
		return fmt.Errorf("delete note %s: %w", id, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// writeJSON sends v as a JSON response with the status. It encodes v before
// it writes anything, so that an encoding failure can still become a 500.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}

	w.Header().Set("Content-Type", mediaTypeJSON)
	w.WriteHeader(status)

	// Write errors are ignored because they mean that the client has
	// disconnected.
	_, _ = w.Write(append(body, '\n'))
	return nil
}
