package db_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"example.com/rotor/internal/db"
)

func TestMigrate(t *testing.T) {
	t.Parallel()

	pg := startPostgres(t)
	superuser := pg.Connect(t)
	bootstrap(t, superuser)
	ctx := t.Context()

	user, password := createLoginRole(t, superuser, "v-migrate", db.OwnerRole)
	config := connConfig(t, pg, user, password)

	var firstLog bytes.Buffer
	if err := db.Migrate(ctx, config, slog.New(slog.NewTextHandler(&firstLog, nil))); err != nil {
		t.Fatalf("first Migrate: %v", err)
	}
	if !strings.Contains(firstLog.String(), "applied database migration") || !strings.Contains(firstLog.String(), "version=1") {
		t.Errorf("first Migrate log: got %q, want an applied migration with version=1", firstLog.String())
	}

	t.Run("owner of objects", func(t *testing.T) {
		relations := []string{"rotor.notes", "rotor.notes_owner_id_idx", "rotor.goose_db_version"}
		for _, relation := range relations {
			var owner string
			err := superuser.QueryRow(ctx,
				"SELECT relowner::regrole::text FROM pg_class WHERE oid = to_regclass($1)",
				relation,
			).Scan(&owner)
			if err != nil {
				t.Errorf("read owner of %s: %v", relation, err)
				continue
			}
			if owner != db.OwnerRole {
				t.Errorf("owner of %s: got %s, want %s", relation, owner, db.OwnerRole)
			}
		}
	})

	t.Run("second run", func(t *testing.T) {
		countVersions := func() int {
			t.Helper()
			var count int
			if err := superuser.QueryRow(ctx, "SELECT count(*) FROM rotor.goose_db_version").Scan(&count); err != nil {
				t.Fatalf("count rows of rotor.goose_db_version: %v", err)
			}
			return count
		}
		before := countVersions()

		var secondLog bytes.Buffer
		if err := db.Migrate(ctx, config, slog.New(slog.NewTextHandler(&secondLog, nil))); err != nil {
			t.Fatalf("second Migrate: %v", err)
		}

		if after := countVersions(); after != before {
			t.Errorf("rows of rotor.goose_db_version after the second run: got %d, want %d", after, before)
		}
		if strings.Contains(secondLog.String(), "applied database migration") {
			t.Errorf("second Migrate log: got %q, want no applied migration", secondLog.String())
		}
	})

	t.Run("migration user owns nothing", func(t *testing.T) {
		if objects := ownedObjects(t, superuser, user); len(objects) != 0 {
			t.Errorf("objects owned by %s: got %v, want none", user, objects)
		}
		dropRole(t, superuser, user)
	})

	t.Run("user outside owner role", func(t *testing.T) {
		outsider, outsiderPassword := createLoginRole(t, superuser, "v-app", db.AppRole)

		err := db.Migrate(ctx, connConfig(t, pg, outsider, outsiderPassword), testLogger(t))
		if err == nil {
			t.Fatalf("Migrate as %s, a member of %s only: got no error, want one", outsider, db.AppRole)
		}
		if !strings.Contains(err.Error(), "set role "+db.OwnerRole) {
			t.Errorf("Migrate error: got %q, want it to name the failed SET ROLE %s", err, db.OwnerRole)
		}
	})
}

func TestMigrateConcurrent(t *testing.T) {
	t.Parallel()

	pg := startPostgres(t)
	superuser := pg.Connect(t)
	bootstrap(t, superuser)

	// Each replica logs in as its own migration user, as replicas with
	// separate Vault leases would.
	const replicas = 3
	logger := testLogger(t)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		user, password := createLoginRole(t, superuser, "v-migrate", db.OwnerRole)
		config := connConfig(t, pg, user, password)
		wg.Go(func() {
			errs[i] = db.Migrate(context.Background(), config, logger)
		})
	}
	wg.Wait()

	for i, err := range errs {
		if err != nil {
			t.Errorf("Migrate of replica %d: %v", i, err)
		}
	}

	var applied int
	err := superuser.QueryRow(t.Context(),
		"SELECT count(*) FROM rotor.goose_db_version WHERE version_id = 1",
	).Scan(&applied)
	if err != nil {
		t.Fatalf("count applications of version 1: %v", err)
	}
	if applied != 1 {
		t.Errorf("applications of version 1: got %d, want 1", applied)
	}
}
