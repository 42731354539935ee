package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"example.com/rotor/internal/notes"
)

// Querier runs SQL statements. *pgxpool.Pool, *pgxpool.Conn, *pgx.Conn and
// pgx.Tx implement it, so [Notes] can run inside a caller's transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

var (
	_ Querier = (*pgxpool.Pool)(nil)
	_ Querier = (*pgxpool.Conn)(nil)
	_ Querier = (*pgx.Conn)(nil)
	_ Querier = pgx.Tx(nil)
)

// Notes stores notes in the table rotor.notes. It is safe for concurrent use
// if its Querier is. A *pgxpool.Pool is, but a *pgx.Conn or a pgx.Tx is not.
type Notes struct {
	db    Querier
	retry *Retry
}

var _ notes.Store = (*Notes)(nil)

// NewNotes returns a Notes that runs its statements on db, once each.
func NewNotes(db Querier) *Notes {
	return &Notes{db: db}
}

// WithRetry returns a copy of s that runs failed statements again as r
// allows. Reads and updates count as idempotent, and a create is made
// idempotent by reusing its id (see Create). A delete is not retried once
// it may have reached the server, because a second run would report a
// note it deleted as not found.
func (s *Notes) WithRetry(r *Retry) *Notes {
	return &Notes{db: s.db, retry: r}
}

// noteColumns lists the columns in the order that scanNote reads them.
const noteColumns = "id, owner, title, body, created_at, updated_at"

// The statements of Notes. pgx caches a prepared statement by its text, so
// WarmNotes uses the same constants.
const (
	createNoteSQL = `INSERT INTO rotor.notes (id, owner, title, body)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (id) DO NOTHING
		RETURNING created_at, updated_at`

	getNoteSQL = `SELECT ` + noteColumns + `
		FROM rotor.notes
		WHERE owner = $1 AND id = $2`

	listNotesSQL = `SELECT ` + noteColumns + `
		FROM rotor.notes
		WHERE owner = $1 AND id > $2
		ORDER BY id
		LIMIT $3`

	// A nil field arrives as NULL, and COALESCE keeps the stored value.
	updateNoteSQL = `UPDATE rotor.notes
		SET title = COALESCE($3, title),
		    body = COALESCE($4, body),
		    updated_at = now()
		WHERE owner = $1 AND id = $2
		RETURNING ` + noteColumns

	deleteNoteSQL = `DELETE FROM rotor.notes WHERE owner = $1 AND id = $2`
)

// Create inserts a note with a new UUIDv7 id. uuid.NewV7 (google/uuid v1.6)
// returns increasing ids within one process, so ordering by id lists one
// replica's notes in creation order. Notes that different replicas create in
// the same millisecond may be listed in either order.
//
// A retry reuses the id, so if a first attempt was committed but its reply
// lost, the retry meets the committed row and returns it instead of
// inserting the note twice.
func (s *Notes) Create(ctx context.Context, owner, title, body string) (notes.Note, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return notes.Note{}, fmt.Errorf("create note: generate id: %w", err)
	}

	note := notes.Note{ID: id, Owner: owner, Title: title, Body: body}
	attempt := 0
	err = s.retry.do(ctx, "create note", true, func(ctx context.Context) error {
		attempt++
		err := s.db.QueryRow(ctx, createNoteSQL, id, owner, title, body).Scan(&note.CreatedAt, &note.UpdatedAt)
		if errors.Is(err, pgx.ErrNoRows) && attempt > 1 {
			note, err = s.get(ctx, owner, id)
		}
		return err
	})
	if err != nil {
		return notes.Note{}, fmt.Errorf("create note %s: %w", id, err)
	}
	return note, nil
}

// Get returns the owner's note with the id, or an error that wraps
// notes.ErrNotFound when the owner has no such note.
func (s *Notes) Get(ctx context.Context, owner string, id uuid.UUID) (notes.Note, error) {
	var note notes.Note
	err := s.retry.do(ctx, "get note", true, func(ctx context.Context) error {
		var err error
		note, err = s.get(ctx, owner, id)
		return err
	})
	if err != nil {
		return notes.Note{}, fmt.Errorf("get note %s: %w", id, err)
	}
	return note, nil
}

func (s *Notes) get(ctx context.Context, owner string, id uuid.UUID) (notes.Note, error) {
	return scanNote(s.db.QueryRow(ctx, getNoteSQL, owner, id))
}

// List returns up to limit of the owner's notes with an id greater than
// after, ordered by id. uuid.Nil starts at the first note. limit must be
// between 1 and notes.MaxListLimit. The result is empty, not nil, when
// nothing follows after.
func (s *Notes) List(ctx context.Context, owner string, after uuid.UUID, limit int) ([]notes.Note, error) {
	if limit < 1 || limit > notes.MaxListLimit {
		return nil, fmt.Errorf("list notes: invalid limit %d: must be between 1 and %d", limit, notes.MaxListLimit)
	}

	var list []notes.Note
	err := s.retry.do(ctx, "list notes", true, func(ctx context.Context) error {
		rows, err := s.db.Query(ctx, listNotesSQL, owner, after, limit)
		if err != nil {
			return err
		}
		list, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (notes.Note, error) {
			return scanNote(row)
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list notes: %w", err)
	}
	return list, nil
}

// Update sets the fields that patch sets and updated_at, and returns the
// note as stored. It returns an error that wraps notes.ErrNotFound when the
// owner has no such note. Update does not validate the patch, and a patch
// that sets no field changes only updated_at.
func (s *Notes) Update(ctx context.Context, owner string, id uuid.UUID, patch notes.Patch) (notes.Note, error) {
	// Running it twice stores the same fields, so it may be retried.
	var note notes.Note
	err := s.retry.do(ctx, "update note", true, func(ctx context.Context) error {
		row := s.db.QueryRow(ctx, updateNoteSQL, owner, id, patch.Title, patch.Body)
		var err error
		note, err = scanNote(row)
		return err
	})
	if err != nil {
		return notes.Note{}, fmt.Errorf("update note %s: %w", id, err)
	}
	return note, nil
}

// Delete removes the owner's note with the id. It returns an error that
// wraps notes.ErrNotFound when the owner has no such note.
func (s *Notes) Delete(ctx context.Context, owner string, id uuid.UUID) error {
	var tag pgconn.CommandTag
	err := s.retry.do(ctx, "delete note", false, func(ctx context.Context) error {
		var err error
		tag, err = s.db.Exec(ctx, deleteNoteSQL, owner, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete note %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete note %s: %w", id, notes.ErrNotFound)
	}
	return nil
}

// scanNote reads the columns of noteColumns and turns pgx.ErrNoRows into
// notes.ErrNotFound.
func scanNote(row pgx.Row) (notes.Note, error) {
	var note notes.Note
	err := row.Scan(&note.ID, &note.Owner, &note.Title, &note.Body, &note.CreatedAt, &note.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return notes.Note{}, notes.ErrNotFound
	}
	return note, err
}

// WarmNotes runs on conn each statement of Notes that can run without
// changing anything, with arguments that match no note: get, list, update
// and delete. The first time a statement runs on a new connection,
// Postgres loads the backend's catalog caches and pgx prepares the
// statement. On a 2-core virtual machine, BenchmarkFirstQuery measured a
// first get at 2.0 ms, and a get after WarmNotes at 0.3 ms like a later
// one. Pool.Retire runs WarmNotes, as PoolConfig.Warm, on the connections
// it opens ahead of a switch, so that requests do not wait for that. The
// insert is left out because it cannot run without writing.
func WarmNotes(ctx context.Context, conn *pgx.Conn) error {
	const noOwner = ""
	var noID uuid.UUID
	statements := []struct {
		name string
		sql  string
		args []any
	}{
		{"get note", getNoteSQL, []any{noOwner, noID}},
		{"list notes", listNotesSQL, []any{noOwner, noID, 1}},
		{"update note", updateNoteSQL, []any{noOwner, noID, nil, nil}},
		{"delete note", deleteNoteSQL, []any{noOwner, noID}},
	}

	// Exec runs a statement through the same statement cache as Query.
	for _, st := range statements {
		if _, err := conn.Exec(ctx, st.sql, st.args...); err != nil {
			return fmt.Errorf("warm connection: %s: %w", st.name, err)
		}
	}
	return nil
}
