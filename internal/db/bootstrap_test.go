package db_test

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"example.com/rotor/internal/db"
)

func TestBootstrap(t *testing.T) {
	t.Parallel()

	pg := startPostgres(t)
	superuser := pg.Connect(t)
	ctx := t.Context()

	// The second run must find everything in place and change nothing that
	// the checks below can see.
	bootstrap(t, superuser)
	bootstrap(t, superuser)

	t.Run("role attributes", func(t *testing.T) {
		tests := []struct {
			role           string
			wantLogin      bool
			wantCreateRole bool
		}{
			{db.OwnerRole, false, false},
			{db.AppRole, false, false},
			{db.DefaultVaultUser, true, true},
		}
		for _, tt := range tests {
			var login, createRole, super bool
			err := superuser.QueryRow(ctx,
				"SELECT rolcanlogin, rolcreaterole, rolsuper FROM pg_roles WHERE rolname = $1",
				tt.role,
			).Scan(&login, &createRole, &super)
			if err != nil {
				t.Fatalf("read attributes of %s: %v", tt.role, err)
			}
			if login != tt.wantLogin {
				t.Errorf("%s rolcanlogin: got %t, want %t", tt.role, login, tt.wantLogin)
			}
			if createRole != tt.wantCreateRole {
				t.Errorf("%s rolcreaterole: got %t, want %t", tt.role, createRole, tt.wantCreateRole)
			}
			if super {
				t.Errorf("%s rolsuper: got true, want false", tt.role)
			}
		}
	})

	t.Run("vault memberships", func(t *testing.T) {
		tests := []struct {
			group     string
			wantAdmin bool
		}{
			{"pg_signal_backend", false},
			{db.AppRole, true},
			{db.OwnerRole, true},
		}
		for _, tt := range tests {
			var admin bool
			err := superuser.QueryRow(ctx, `
				SELECT m.admin_option
				FROM pg_auth_members m
				JOIN pg_roles g ON g.oid = m.roleid
				JOIN pg_roles u ON u.oid = m.member
				WHERE g.rolname = $1 AND u.rolname = $2`,
				tt.group, db.DefaultVaultUser,
			).Scan(&admin)
			if err != nil {
				t.Errorf("membership of %s in %s: got error %v, want a membership", db.DefaultVaultUser, tt.group, err)
				continue
			}
			if admin != tt.wantAdmin {
				t.Errorf("admin option of %s in %s: got %t, want %t", db.DefaultVaultUser, tt.group, admin, tt.wantAdmin)
			}
		}
	})

	t.Run("schema owner", func(t *testing.T) {
		var owner string
		err := superuser.QueryRow(ctx,
			"SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = $1",
			db.Schema,
		).Scan(&owner)
		if err != nil {
			t.Fatalf("read owner of schema %s: %v", db.Schema, err)
		}
		if owner != db.OwnerRole {
			t.Errorf("owner of schema %s: got %s, want %s", db.Schema, owner, db.OwnerRole)
		}
	})

	t.Run("app role cannot create", func(t *testing.T) {
		checks := []struct{ name, sql string }{
			{"CREATE on schema rotor", "SELECT has_schema_privilege($1, 'rotor', 'CREATE')"},
			{"CREATE on schema public", "SELECT has_schema_privilege($1, 'public', 'CREATE')"},
			{"CREATE on the database", "SELECT has_database_privilege($1, current_database(), 'CREATE')"},
			{"TEMPORARY on the database", "SELECT has_database_privilege($1, current_database(), 'TEMPORARY')"},
		}
		for _, check := range checks {
			var allowed bool
			if err := superuser.QueryRow(ctx, check.sql, db.AppRole).Scan(&allowed); err != nil {
				t.Fatalf("check %s for %s: %v", check.name, db.AppRole, err)
			}
			if allowed {
				t.Errorf("%s for %s: got granted, want not granted", check.name, db.AppRole)
			}
		}
	})

	t.Run("vault password reset", func(t *testing.T) {
		const newPassword = "new-vault-password-with-'quote"
		err := db.Bootstrap(ctx, superuser, db.BootstrapOptions{
			VaultUser:     db.DefaultVaultUser,
			VaultPassword: newPassword,
		})
		if err != nil {
			t.Fatalf("Bootstrap with a new password: %v", err)
		}

		conn, err := pgx.ConnectConfig(ctx, connConfig(t, pg, db.DefaultVaultUser, newPassword))
		if err != nil {
			t.Fatalf("connect as %s with the new password: %v", db.DefaultVaultUser, err)
		}
		conn.Close(ctx)

		conn, err = pgx.ConnectConfig(ctx, connConfig(t, pg, db.DefaultVaultUser, testVaultPassword))
		if err == nil {
			conn.Close(ctx)
			t.Fatalf("connect as %s with the old password: got no error, want an authentication failure", db.DefaultVaultUser)
		}
		requireSQLState(t, err, "28P01") // invalid_password
	})

	t.Run("vault user named like a group", func(t *testing.T) {
		for _, user := range []string{db.OwnerRole, db.AppRole} {
			err := db.Bootstrap(ctx, superuser, db.BootstrapOptions{VaultUser: user, VaultPassword: testVaultPassword})
			if err == nil {
				t.Errorf("Bootstrap with VaultUser %s: got no error, want one", user)
			}
		}
	})

	t.Run("invalid password", func(t *testing.T) {
		for _, password := range []string{"", "nul\x00byte"} {
			err := db.Bootstrap(ctx, superuser, db.BootstrapOptions{VaultPassword: password})
			if err == nil {
				t.Errorf("Bootstrap with password %q: got no error, want one", password)
			}
		}
	})
}
