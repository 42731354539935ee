package db_test

import (
	"testing"

	"github.com/google/uuid"

	"example.com/rotor/internal/db"
	"example.com/rotor/internal/notes"
)

// insufficientPrivilege is the SQLSTATE of a statement that the current role
// lacks a privilege for.
const insufficientPrivilege = "42501"

func TestRuntimeRole(t *testing.T) {
	t.Parallel()

	pool, runtimeUser, superuser := newRuntimeDatabase(t)
	ctx := t.Context()

	t.Run("CRUD", func(t *testing.T) {
		store := db.NewNotes(pool)
		const owner = "spiffe://rotor.test/runtime"

		created, err := store.Create(ctx, owner, "title", "body")
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		if _, err := store.Get(ctx, owner, created.ID); err != nil {
			t.Errorf("Get: %v", err)
		}
		title := "new title"
		if _, err := store.Update(ctx, owner, created.ID, notes.Patch{Title: &title}); err != nil {
			t.Errorf("Update: %v", err)
		}
		if _, err := store.List(ctx, owner, uuid.Nil, notes.DefaultPageSize); err != nil {
			t.Errorf("List: %v", err)
		}
		if err := store.Delete(ctx, owner, created.ID); err != nil {
			t.Errorf("Delete: %v", err)
		}
	})

	t.Run("denied statements", func(t *testing.T) {
		statements := []string{
			"CREATE TABLE rotor.intruder (id int)",
			"CREATE TABLE public.intruder (id int)",
			"CREATE TEMPORARY TABLE intruder (id int)",
			"CREATE SCHEMA intruder",
			"SELECT count(*) FROM rotor.goose_db_version",
			"DELETE FROM rotor.goose_db_version",
		}
		for _, sql := range statements {
			_, err := pool.Exec(ctx, sql)
			if err == nil {
				t.Errorf("%s as %s: got no error, want permission denied", sql, runtimeUser)
				continue
			}
			requireSQLState(t, err, insufficientPrivilege)
		}
	})

	t.Run("version table after bootstrap rerun", func(t *testing.T) {
		// A rerun grants on every existing table in the schema and must
		// take the migration history back out.
		bootstrap(t, superuser)

		_, err := pool.Exec(ctx, "SELECT count(*) FROM rotor.goose_db_version")
		if err == nil {
			t.Fatalf("read rotor.goose_db_version as %s: got no error, want permission denied", runtimeUser)
		}
		requireSQLState(t, err, insufficientPrivilege)
	})

	t.Run("runtime user owns nothing", func(t *testing.T) {
		if objects := ownedObjects(t, superuser, runtimeUser); len(objects) != 0 {
			t.Errorf("objects owned by %s: got %v, want none", runtimeUser, objects)
		}

		// Vault ends the user's sessions before it drops the user.
		pool.Close()
		dropRole(t, superuser, runtimeUser)
	})
}
