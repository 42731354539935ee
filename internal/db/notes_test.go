package db_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"example.com/rotor/internal/db"
	"example.com/rotor/internal/notes"
)

// requireSameNote fails the test unless got and want have the same fields.
// Timestamps are compared with time.Time.Equal.
func requireSameNote(tb testing.TB, got, want notes.Note) {
	tb.Helper()

	if got.ID != want.ID || got.Owner != want.Owner || got.Title != want.Title || got.Body != want.Body {
		tb.Fatalf("note: got %+v, want %+v", got, want)
	}
	if !got.CreatedAt.Equal(want.CreatedAt) {
		tb.Fatalf("note %s created_at: got %v, want %v", got.ID, got.CreatedAt, want.CreatedAt)
	}
	if !got.UpdatedAt.Equal(want.UpdatedAt) {
		tb.Fatalf("note %s updated_at: got %v, want %v", got.ID, got.UpdatedAt, want.UpdatedAt)
	}
}

// createNote creates a note and fails the test if that fails.
func createNote(tb testing.TB, store *db.Notes, owner, title, body string) notes.Note {
	tb.Helper()

	note, err := store.Create(context.Background(), owner, title, body)
	if err != nil {
		tb.Fatalf("Create %q for %s: %v", title, owner, err)
	}
	return note
}

// noteIDs returns the ids of list in order.
func noteIDs(list []notes.Note) []uuid.UUID {
	ids := make([]uuid.UUID, len(list))
	for i, note := range list {
		ids[i] = note.ID
	}
	return ids
}

func TestNotes(t *testing.T) {
	t.Parallel()

	pool, _, _ := newRuntimeDatabase(t)
	store := db.NewNotes(pool)
	ctx := t.Context()

	t.Run("round trip", func(t *testing.T) {
		const owner = "spiffe://rotor.test/round-trip"

		created := createNote(t, store, owner, "first title", "first body")
		if created.ID.Version() != 7 {
			t.Errorf("id version: got %d, want 7", created.ID.Version())
		}
		if created.Owner != owner || created.Title != "first title" || created.Body != "first body" {
			t.Errorf("created note: got %+v, want owner %s, title and body as given", created, owner)
		}
		if created.CreatedAt.IsZero() || !created.UpdatedAt.Equal(created.CreatedAt) {
			t.Errorf("created note timestamps: got created_at %v and updated_at %v, want equal and set",
				created.CreatedAt, created.UpdatedAt)
		}

		got, err := store.Get(ctx, owner, created.ID)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		requireSameNote(t, got, created)

		title, body := "second title", "second body"
		updated, err := store.Update(ctx, owner, created.ID, notes.Patch{Title: &title, Body: &body})
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		if updated.Title != title || updated.Body != body {
			t.Errorf("updated note: got title %q and body %q, want %q and %q", updated.Title, updated.Body, title, body)
		}
		if !updated.CreatedAt.Equal(created.CreatedAt) {
			t.Errorf("created_at after Update: got %v, want %v", updated.CreatedAt, created.CreatedAt)
		}
		if !updated.UpdatedAt.After(created.UpdatedAt) {
			t.Errorf("updated_at after Update: got %v, want later than %v", updated.UpdatedAt, created.UpdatedAt)
		}

		got, err = store.Get(ctx, owner, created.ID)
		if err != nil {
			t.Fatalf("Get after Update: %v", err)
		}
		requireSameNote(t, got, updated)

		if err := store.Delete(ctx, owner, created.ID); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := store.Get(ctx, owner, created.ID); !errors.Is(err, notes.ErrNotFound) {
			t.Errorf("Get after Delete: got error %v, want %v", err, notes.ErrNotFound)
		}
		if err := store.Delete(ctx, owner, created.ID); !errors.Is(err, notes.ErrNotFound) {
			t.Errorf("second Delete: got error %v, want %v", err, notes.ErrNotFound)
		}
	})

	t.Run("missing note", func(t *testing.T) {
		const owner = "spiffe://rotor.test/missing"
		id := uuid.Must(uuid.NewV7())
		title := "title"

		if _, err := store.Get(ctx, owner, id); !errors.Is(err, notes.ErrNotFound) {
			t.Errorf("Get: got error %v, want %v", err, notes.ErrNotFound)
		}
		if _, err := store.Update(ctx, owner, id, notes.Patch{Title: &title}); !errors.Is(err, notes.ErrNotFound) {
			t.Errorf("Update: got error %v, want %v", err, notes.ErrNotFound)
		}
		if err := store.Delete(ctx, owner, id); !errors.Is(err, notes.ErrNotFound) {
			t.Errorf("Delete: got error %v, want %v", err, notes.ErrNotFound)
		}
	})

	t.Run("owner scoping", func(t *testing.T) {
		const owner = "spiffe://rotor.test/owner"
		const other = "spiffe://rotor.test/other"
		note := createNote(t, store, owner, "private", "body")
		title := "taken over"

		if _, err := store.Get(ctx, other, note.ID); !errors.Is(err, notes.ErrNotFound) {
			t.Errorf("Get by other owner: got error %v, want %v", err, notes.ErrNotFound)
		}
		if _, err := store.Update(ctx, other, note.ID, notes.Patch{Title: &title}); !errors.Is(err, notes.ErrNotFound) {
			t.Errorf("Update by other owner: got error %v, want %v", err, notes.ErrNotFound)
		}
		if err := store.Delete(ctx, other, note.ID); !errors.Is(err, notes.ErrNotFound) {
			t.Errorf("Delete by other owner: got error %v, want %v", err, notes.ErrNotFound)
		}

		list, err := store.List(ctx, other, uuid.Nil, notes.MaxPageSize)
		if err != nil {
			t.Fatalf("List by other owner: %v", err)
		}
		if len(list) != 0 {
			t.Errorf("List by other owner: got %d notes, want 0", len(list))
		}

		// The failed attempts must have left the note as it was.
		got, err := store.Get(ctx, owner, note.ID)
		if err != nil {
			t.Fatalf("Get by owner: %v", err)
		}
		requireSameNote(t, got, note)
	})

	t.Run("list pagination", func(t *testing.T) {
		const owner = "spiffe://rotor.test/pagination"
		var want []uuid.UUID
		for _, title := range []string{"one", "two", "three", "four", "five"} {
			want = append(want, createNote(t, store, owner, title, "").ID)
		}
		// Another owner's note between the pages must not appear.
		createNote(t, store, "spiffe://rotor.test/pagination-other", "other", "")

		var got []uuid.UUID
		after := uuid.Nil
		for page := 0; ; page++ {
			list, err := store.List(ctx, owner, after, 2)
			if err != nil {
				t.Fatalf("List page %d: %v", page, err)
			}
			if len(list) > 2 {
				t.Fatalf("List page %d: got %d notes, want at most 2", page, len(list))
			}
			if len(list) == 0 {
				break
			}
			got = append(got, noteIDs(list)...)
			after = list[len(list)-1].ID
		}

		if len(got) != len(want) {
			t.Fatalf("listed ids: got %v, want %v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("listed id %d: got %s, want %s", i, got[i], want[i])
			}
		}
	})

	t.Run("list invalid limit", func(t *testing.T) {
		for _, limit := range []int{-1, 0, notes.MaxListLimit + 1} {
			if _, err := store.List(ctx, "spiffe://rotor.test/limit", uuid.Nil, limit); err == nil {
				t.Errorf("List with limit %d: got no error, want one", limit)
			}
		}
	})

	// The API lists a full page by asking for one note more.
	t.Run("list one more than a page", func(t *testing.T) {
		if _, err := store.List(ctx, "spiffe://rotor.test/limit", uuid.Nil, notes.MaxListLimit); err != nil {
			t.Errorf("List with limit %d: got %v, want no error", notes.MaxListLimit, err)
		}
	})

	t.Run("update title only", func(t *testing.T) {
		const owner = "spiffe://rotor.test/update-title"
		note := createNote(t, store, owner, "old title", "kept body")
		title := "new title"

		updated, err := store.Update(ctx, owner, note.ID, notes.Patch{Title: &title})
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		if updated.Title != title {
			t.Errorf("title: got %q, want %q", updated.Title, title)
		}
		if updated.Body != note.Body {
			t.Errorf("body: got %q, want %q", updated.Body, note.Body)
		}
	})

	t.Run("update body only", func(t *testing.T) {
		const owner = "spiffe://rotor.test/update-body"
		note := createNote(t, store, owner, "kept title", "old body")
		body := "new body"

		updated, err := store.Update(ctx, owner, note.ID, notes.Patch{Body: &body})
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		if updated.Title != note.Title {
			t.Errorf("title: got %q, want %q", updated.Title, note.Title)
		}
		if updated.Body != body {
			t.Errorf("body: got %q, want %q", updated.Body, body)
		}
	})

	t.Run("update to empty body", func(t *testing.T) {
		const owner = "spiffe://rotor.test/update-empty"
		note := createNote(t, store, owner, "title", "old body")
		empty := ""

		updated, err := store.Update(ctx, owner, note.ID, notes.Patch{Body: &empty})
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		// An empty string is a value to set, unlike a nil field.
		if updated.Body != "" {
			t.Errorf("body: got %q, want empty", updated.Body)
		}
	})
}

// TestWarmNotes runs WarmNotes on a new connection. It must change no note,
// and it must prepare the statements that Notes then runs on that
// connection, so that they prepare nothing more.
func TestWarmNotes(t *testing.T) {
	t.Parallel()

	pool, _, _ := newRuntimeDatabase(t)
	store := db.NewNotes(pool)
	ctx := t.Context()
	const owner = "spiffe://rotor.test/warm"
	note := createNote(t, store, owner, "title", "body")

	// Closing the idle connections makes the next Acquire open a new one.
	pool.Reset()
	conn := acquire(t, pool)
	defer conn.Release()

	if err := db.WarmNotes(ctx, conn.Conn()); err != nil {
		t.Fatalf("WarmNotes: %v", err)
	}
	if n := preparedStatements(t, conn.Conn()); n != 4 {
		t.Errorf("got %d prepared statements after WarmNotes, want 4: get, list, update and delete", n)
	}
	got, err := store.Get(ctx, owner, note.ID)
	if err != nil {
		t.Fatalf("Get after WarmNotes: %v", err)
	}
	requireSameNote(t, got, note)

	onConn := db.NewNotes(conn)
	if _, err := onConn.Get(ctx, owner, note.ID); err != nil {
		t.Fatalf("Get: %v", err)
	}
	if _, err := onConn.List(ctx, owner, uuid.Nil, 10); err != nil {
		t.Fatalf("List: %v", err)
	}
	title := "new title"
	if _, err := onConn.Update(ctx, owner, note.ID, notes.Patch{Title: &title}); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if err := onConn.Delete(ctx, owner, note.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if n := preparedStatements(t, conn.Conn()); n != 4 {
		t.Errorf("got %d prepared statements after get, list, update and delete, want the 4 that WarmNotes prepared", n)
	}
}

// preparedStatements counts the prepared statements of conn's session. It
// uses the simple protocol, which prepares nothing.
func preparedStatements(tb testing.TB, conn *pgx.Conn) int {
	tb.Helper()

	var n int
	err := conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_prepared_statements", pgx.QueryExecModeSimpleProtocol).Scan(&n)
	if err != nil {
		tb.Fatalf("count prepared statements: %v", err)
	}
	return n
}
