package db

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// BootstrapOptions configures [Bootstrap].
type BootstrapOptions struct {
	// VaultUser is the login role that Vault's database secrets engine
	// connects as. The default is [DefaultVaultUser].
	VaultUser string

	// VaultPassword is the password that Bootstrap sets for VaultUser on
	// every run. It is required. Vault may rotate it later, and running
	// Bootstrap again sets it back to this value.
	VaultPassword string
}

// Bootstrap creates the roles, the schema and the privileges described in
// the package documentation, in the database that conn is connected to. A
// superuser runs it once before Vault is configured. The tests run it as a
// superuser only. An administrator role on a managed service needs at least
// the rights to create roles, to grant pg_signal_backend and to grant
// privileges on the database.
//
// Bootstrap also revokes TEMPORARY on the database from PUBLIC, so that
// runtime users cannot create temporary tables, which they would own.
//
// Running Bootstrap again is safe. It creates only what is missing, restores
// the role attributes and grants that it sets if they were changed, and sets
// the Vault user's password to opts.VaultPassword.
//
// Everything happens in one transaction, so a failed run changes nothing.
// Bootstrap must not run concurrently with itself, because two runs that
// both find a role missing both try to create it. It does not close conn.
//
// NOTE: PostgreSQL writes the statement that sets the password, including
// the password, to its log when log_statement is 'ddl' or 'all'.
func Bootstrap(ctx context.Context, conn *pgx.Conn, opts BootstrapOptions) error {
	vaultUser := cmp.Or(opts.VaultUser, DefaultVaultUser)
	if vaultUser == OwnerRole || vaultUser == AppRole {
		return fmt.Errorf("bootstrap: invalid Vault user %q: it must differ from the NOLOGIN roles %s and %s",
			vaultUser, OwnerRole, AppRole)
	}
	password, err := passwordLiteral(conn, opts.VaultPassword)
	if err != nil {
		return fmt.Errorf("bootstrap: invalid password for %s: %w", vaultUser, err)
	}

	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("bootstrap: begin transaction: %w", err)
	}
	defer tx.Rollback(ctx)

	for _, role := range []string{OwnerRole, AppRole, vaultUser} {
		if err := createRoleIfMissing(ctx, tx, role); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
	}

	var (
		database           string
		publicSchemaExists bool
		versionTableExists bool
	)
	err = tx.QueryRow(ctx,
		"SELECT current_database(), to_regnamespace('public') IS NOT NULL, to_regclass($1) IS NOT NULL",
		pgx.Identifier{Schema, VersionTable}.Sanitize(),
	).Scan(&database, &publicSchemaExists, &versionTableExists)
	if err != nil {
		return fmt.Errorf("bootstrap: read current database: %w", err)
	}

	steps := bootstrapSteps(vaultUser, password, database, publicSchemaExists, versionTableExists)
	for _, step := range steps {
		// The error names the step, never the SQL, because one statement
		// contains the password.
		if _, err := tx.Exec(ctx, step.sql); err != nil {
			return fmt.Errorf("bootstrap: %s: %w", step.name, err)
		}
	}

	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("bootstrap: commit: %w", err)
	}
	return nil
}

// bootstrapStep is one statement of [Bootstrap] and the description that
// its error message uses.
type bootstrapStep struct {
	name string
	sql  string
}

// bootstrapSteps returns the statements that give existing roles their
// attributes, memberships and privileges. Every statement succeeds and has
// the same effect when it runs again.
func bootstrapSteps(vaultUser, passwordLiteral, database string, publicSchemaExists, versionTableExists bool) []bootstrapStep {
	var (
		owner  = pgx.Identifier{OwnerRole}.Sanitize()
		app    = pgx.Identifier{AppRole}.Sanitize()
		vault  = pgx.Identifier{vaultUser}.Sanitize()
		schema = pgx.Identifier{Schema}.Sanitize()
		db     = pgx.Identifier{database}.Sanitize()
	)

	steps := []bootstrapStep{
		{
			"set attributes of " + OwnerRole,
			"ALTER ROLE " + owner + " WITH NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS",
		},
		{
			"set attributes of " + AppRole,
			"ALTER ROLE " + app + " WITH NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS",
		},
		{
			"set attributes and password of " + vaultUser,
			"ALTER ROLE " + vault + " WITH LOGIN CREATEROLE NOSUPERUSER NOCREATEDB NOREPLICATION NOBYPASSRLS PASSWORD " + passwordLiteral,
		},
		// Vault's revocation statements end the sessions of the user that
		// they drop, which needs pg_signal_backend.
		{
			"grant pg_signal_backend to " + vaultUser,
			"GRANT pg_signal_backend TO " + vault,
		},
		// From PostgreSQL 16 on, CREATE ROLE ... IN ROLE needs ADMIN OPTION
		// on the group role. On 15, CREATEROLE alone is enough.
		// NOTE: the grant also makes the Vault user inherit the privileges
		// of rotor_owner, including ownership of the schema.
		{
			"grant " + AppRole + " and " + OwnerRole + " to " + vaultUser,
			"GRANT " + app + ", " + owner + " TO " + vault + " WITH ADMIN OPTION",
		},
		{
			"create schema " + Schema,
			"CREATE SCHEMA IF NOT EXISTS " + schema + " AUTHORIZATION " + owner,
		},
		{
			"set owner of schema " + Schema,
			"ALTER SCHEMA " + schema + " OWNER TO " + owner,
		},
		{
			"revoke TEMPORARY on database " + database + " from PUBLIC",
			"REVOKE TEMPORARY ON DATABASE " + db + " FROM PUBLIC",
		},
		{
			"grant CONNECT on database " + database,
			"GRANT CONNECT ON DATABASE " + db + " TO " + app + ", " + vault,
		},
		// Migrations may stage data in temporary tables. A migration user
		// keeps them only until its session ends.
		{
			"grant CONNECT and TEMPORARY on database " + database + " to " + OwnerRole,
			"GRANT CONNECT, TEMPORARY ON DATABASE " + db + " TO " + owner,
		},
		{
			"grant USAGE on schema " + Schema + " to " + AppRole,
			"GRANT USAGE ON SCHEMA " + schema + " TO " + app,
		},
		// Default privileges cover the tables and sequences that migrations
		// create later. They apply only to objects that rotor_owner creates,
		// which is why Migrate runs SET ROLE first.
		{
			"set default privileges on tables",
			"ALTER DEFAULT PRIVILEGES FOR ROLE " + owner + " IN SCHEMA " + schema +
				" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO " + app,
		},
		{
			"set default privileges on sequences",
			"ALTER DEFAULT PRIVILEGES FOR ROLE " + owner + " IN SCHEMA " + schema +
				" GRANT USAGE, SELECT ON SEQUENCES TO " + app,
		},
		{
			"grant privileges on existing tables",
			"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA " + schema + " TO " + app,
		},
		{
			"grant privileges on existing sequences",
			"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA " + schema + " TO " + app,
		},
	}

	// PostgreSQL 15 and later create the public schema without CREATE for
	// PUBLIC, but a cluster upgraded from an older version keeps the old
	// grant.
	if publicSchemaExists {
		steps = append(steps, bootstrapStep{
			"revoke CREATE on schema public from PUBLIC",
			"REVOKE CREATE ON SCHEMA public FROM PUBLIC",
		})
	}

	// The grant on all tables above includes the migration history. The
	// first migration revokes the same privileges when goose creates the
	// table after Bootstrap.
	if versionTableExists {
		steps = append(steps, bootstrapStep{
			"revoke privileges on " + Schema + "." + VersionTable + " from " + AppRole,
			"REVOKE ALL ON TABLE " + pgx.Identifier{Schema, VersionTable}.Sanitize() + " FROM " + app,
		})
	}
	return steps
}

// createRoleIfMissing creates role with no attributes unless a role of that
// name exists. PostgreSQL has no CREATE ROLE IF NOT EXISTS.
func createRoleIfMissing(ctx context.Context, tx pgx.Tx, role string) error {
	var exists bool
	err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role).Scan(&exists)
	if err != nil {
		return fmt.Errorf("look up role %s: %w", role, err)
	}
	if exists {
		return nil
	}
	if _, err := tx.Exec(ctx, "CREATE ROLE "+pgx.Identifier{role}.Sanitize()); err != nil {
		return fmt.Errorf("create role %s: %w", role, err)
	}
	return nil
}

// passwordLiteral returns password as a quoted SQL string literal.
//
// CREATE ROLE and ALTER ROLE are utility statements, which take no bind
// parameters, so the password must be part of the SQL text. EscapeString
// doubles single quotes, which makes the literal safe because it also
// requires standard_conforming_strings=on, under which a backslash is an
// ordinary character.
func passwordLiteral(conn *pgx.Conn, password string) (string, error) {
	if password == "" {
		return "", errors.New("password is empty")
	}
	// PostgreSQL cannot store a NUL byte in a string.
	if strings.ContainsRune(password, 0) {
		return "", errors.New("password contains a NUL byte")
	}
	escaped, err := conn.PgConn().EscapeString(password)
	if err != nil {
		return "", err
	}
	return "'" + escaped + "'", nil
}
