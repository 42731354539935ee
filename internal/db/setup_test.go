package db_test

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"example.com/rotor/internal/db"
	"example.com/rotor/internal/testenv"
)

// testVaultPassword is the password that the tests give Vault's login role.
const testVaultPassword = "vault-test-password"

// startPostgres starts a Postgres container that only the calling test uses,
// because the roles that Bootstrap creates belong to the whole cluster.
func startPostgres(tb testing.TB) *testenv.Postgres {
	tb.Helper()
	return testenv.StartPostgres(tb, testenv.NewNetwork(tb))
}

// bootstrap runs db.Bootstrap as the superuser.
func bootstrap(tb testing.TB, superuser *pgx.Conn) {
	tb.Helper()

	err := db.Bootstrap(context.Background(), superuser, db.BootstrapOptions{VaultPassword: testVaultPassword})
	if err != nil {
		tb.Fatalf("Bootstrap: %v", err)
	}
}

// createLoginRole creates a login role in group the way Vault's creation
// statements do, and returns its name and password. prefix starts the name.
func createLoginRole(tb testing.TB, superuser *pgx.Conn, prefix, group string) (user, password string) {
	tb.Helper()

	user = prefix + "-" + strings.ToLower(rand.Text()[:8])
	password = rand.Text()
	expiration := time.Now().Add(time.Hour).UTC().Format("2006-01-02 15:04:05-07")
	// rand.Text returns only base32 characters, which need no quoting.
	sql := "CREATE ROLE " + pgx.Identifier{user}.Sanitize() +
		" WITH LOGIN PASSWORD '" + password + "' VALID UNTIL '" + expiration + "'" +
		" IN ROLE " + pgx.Identifier{group}.Sanitize()
	if _, err := superuser.Exec(context.Background(), sql); err != nil {
		tb.Fatalf("create login role %s in %s: %v", user, group, err)
	}
	return user, password
}

// connConfig returns the configuration of a connection to pg as user.
func connConfig(tb testing.TB, pg *testenv.Postgres, user, password string) *pgx.ConnConfig {
	tb.Helper()

	config, err := pgx.ParseConfig(pg.URL)
	if err != nil {
		tb.Fatalf("parse postgres URL: %v", err)
	}
	config.User = user
	config.Password = password
	return config
}

// connStringWithoutCredentials returns pg.URL without the superuser's name
// and password.
func connStringWithoutCredentials(tb testing.TB, pg *testenv.Postgres) string {
	tb.Helper()

	u, err := url.Parse(pg.URL)
	if err != nil {
		tb.Fatalf("parse postgres URL: %v", err)
	}
	u.User = nil
	return u.String()
}

// testLogger returns a logger that writes to the test's output.
func testLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tb.Output(), nil))
}

// migrate runs db.Migrate as a new member of db.OwnerRole and returns that
// member's name.
func migrate(tb testing.TB, pg *testenv.Postgres, superuser *pgx.Conn) string {
	tb.Helper()

	user, password := createLoginRole(tb, superuser, "v-migrate", db.OwnerRole)
	if err := db.Migrate(context.Background(), connConfig(tb, pg, user, password), testLogger(tb)); err != nil {
		tb.Fatalf("Migrate as %s: %v", user, err)
	}
	return user
}

// staticCredentials returns a CredentialFunc that always returns user and
// password.
func staticCredentials(user, password string) db.CredentialFunc {
	return func(context.Context) (string, string, error) {
		return user, password, nil
	}
}

// newPool opens a pool to pg whose connections log in with credentials and
// closes it when the test ends.
func newPool(tb testing.TB, pg *testenv.Postgres, credentials db.CredentialFunc) *db.Pool {
	tb.Helper()

	pool, err := db.NewPool(context.Background(), db.PoolConfig{
		ConnString:  connStringWithoutCredentials(tb, pg),
		Credentials: credentials,
	})
	if err != nil {
		tb.Fatalf("NewPool: %v", err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// newRuntimeDatabase starts Postgres, bootstraps and migrates it, creates a
// runtime role in db.AppRole and returns a pool that logs in as that role,
// together with the role's name and a superuser connection.
func newRuntimeDatabase(tb testing.TB) (pool *db.Pool, runtimeUser string, superuser *pgx.Conn) {
	tb.Helper()

	pg := startPostgres(tb)
	superuser = pg.Connect(tb)
	bootstrap(tb, superuser)
	migrate(tb, pg, superuser)

	runtimeUser, password := createLoginRole(tb, superuser, "v-app", db.AppRole)
	return newPool(tb, pg, staticCredentials(runtimeUser, password)), runtimeUser, superuser
}

// ownedObjects returns the relations and schemas in the current database
// that role owns.
func ownedObjects(tb testing.TB, superuser *pgx.Conn, role string) []string {
	tb.Helper()

	rows, err := superuser.Query(context.Background(), `
		SELECT 'relation ' || c.oid::regclass::text
		FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
		WHERE r.rolname = $1
		UNION ALL
		SELECT 'schema ' || n.nspname
		FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner
		WHERE r.rolname = $1`,
		role)
	if err != nil {
		tb.Fatalf("list objects owned by %s: %v", role, err)
	}
	objects, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		tb.Fatalf("list objects owned by %s: %v", role, err)
	}
	return objects
}

// dropRole drops role as Vault's revocation statements would.
func dropRole(tb testing.TB, superuser *pgx.Conn, role string) {
	tb.Helper()

	if _, err := superuser.Exec(context.Background(), "DROP ROLE "+pgx.Identifier{role}.Sanitize()); err != nil {
		tb.Errorf("DROP ROLE %s: got error %v, want none", role, err)
	}
}

// requireSQLState fails the test unless err is a PostgreSQL error with the
// SQLSTATE code.
func requireSQLState(tb testing.TB, err error, code string) {
	tb.Helper()

	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		tb.Fatalf("got error %v, want a PostgreSQL error with SQLSTATE %s", err, code)
	}
	if pgErr.Code != code {
		tb.Fatalf("got SQLSTATE %s (%s), want %s", pgErr.Code, pgErr.Message, code)
	}
}
