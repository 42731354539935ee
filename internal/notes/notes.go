// Package notes defines the note, rotor's one resource, and the Store
// contract that the Postgres repository implements and the HTTP handlers
// consume. Every operation is scoped to an owner: the client identity taken
// from the caller's certificate.
package notes

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Field limits, counted in Unicode code points.
const (
	MaxTitleLength = 200
	MaxBodyLength  = 10000
)

// Page sizes of the API. Store.List accepts limits up to MaxListLimit, one
// more than a page, so that a caller can ask for an extra note to learn
// whether another page follows.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
	MaxListLimit    = MaxPageSize + 1
)

// ErrNotFound is returned when no note with the id exists for the owner.
// A note that belongs to another owner is reported the same way.
var ErrNotFound = errors.New("note not found")

// ErrUnavailable is returned, wrapped, when the store cannot be reached for
// a while, for instance during a database restart or while a revoked
// credential is replaced. The operation did not take effect, or for a
// write its effect is unknown; the caller may try again later.
var ErrUnavailable = errors.New("note store temporarily unavailable")

// Note is a short text that belongs to one client identity. IDs are UUIDv7,
// so their order is the order of creation.
type Note struct {
	ID        uuid.UUID
	Owner     string
	Title     string
	Body      string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Patch is a partial update: a nil field is left unchanged.
type Patch struct {
	Title *string
	Body  *string
}

// Store keeps notes. Implementations must be safe for concurrent use and
// must return ErrNotFound, possibly wrapped, for a missing note.
type Store interface {
	// Create stores a new note for owner and returns it with its id and
	// timestamps set.
	Create(ctx context.Context, owner, title, body string) (Note, error)

	// Get returns the owner's note with the id.
	Get(ctx context.Context, owner string, id uuid.UUID) (Note, error)

	// List returns up to limit of the owner's notes in creation order,
	// starting after the note with id after; uuid.Nil starts at the first.
	// limit is between 1 and MaxListLimit.
	List(ctx context.Context, owner string, after uuid.UUID, limit int) ([]Note, error)

	// Update applies the patch to the owner's note and returns the result.
	Update(ctx context.Context, owner string, id uuid.UUID, patch Patch) (Note, error)

	// Delete removes the owner's note.
	Delete(ctx context.Context, owner string, id uuid.UUID) error
}

// FieldError describes one field that breaks a limit.
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// ValidationError lists every field of a request that breaks a limit.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Reason
	}
	return "invalid note: " + strings.Join(parts, "; ")
}

// nulReason rejects U+0000, which JSON can carry as \u0000 but a
// PostgreSQL text value cannot hold.
const nulReason = "must not contain the NUL character U+0000"

// ValidateTitle and ValidateBody return a reason when the value breaks its
// limit and "" when it is valid.
func ValidateTitle(title string) string {
	switch {
	case !utf8.ValidString(title):
		return "must be valid UTF-8"
	case strings.ContainsRune(title, 0):
		return nulReason
	case strings.TrimSpace(title) == "":
		return "must not be empty"
	case utf8.RuneCountInString(title) > MaxTitleLength:
		return fmt.Sprintf("must be at most %d characters", MaxTitleLength)
	}
	return ""
}

func ValidateBody(body string) string {
	switch {
	case !utf8.ValidString(body):
		return "must be valid UTF-8"
	case strings.ContainsRune(body, 0):
		return nulReason
	case utf8.RuneCountInString(body) > MaxBodyLength:
		return fmt.Sprintf("must be at most %d characters", MaxBodyLength)
	}
	return ""
}

// ValidateNew checks the fields of a note to be created.
func ValidateNew(title, body string) error {
	var v ValidationError
	if reason := ValidateTitle(title); reason != "" {
		v.Fields = append(v.Fields, FieldError{"title", reason})
	}
	if reason := ValidateBody(body); reason != "" {
		v.Fields = append(v.Fields, FieldError{"body", reason})
	}
	if len(v.Fields) > 0 {
		return &v
	}
	return nil
}

// Validate checks the fields that the patch sets; a patch that sets none is
// invalid.
func (p Patch) Validate() error {
	var v ValidationError
	if p.Title == nil && p.Body == nil {
		v.Fields = append(v.Fields, FieldError{"", "at least one of title and body must be set"})
	}
	if p.Title != nil {
		if reason := ValidateTitle(*p.Title); reason != "" {
			v.Fields = append(v.Fields, FieldError{"title", reason})
		}
	}
	if p.Body != nil {
		if reason := ValidateBody(*p.Body); reason != "" {
			v.Fields = append(v.Fields, FieldError{"body", reason})
		}
	}
	if len(v.Fields) > 0 {
		return &v
	}
	return nil
}
