package db

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// migrationFiles contains the schema migrations in goose's SQL format. The
// version is the number that starts each file name.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrate applies the embedded migrations that the database lacks and logs
// each one it applies to logger, or to slog.Default when logger is nil.
//
// connConfig must come from pgx.ParseConfig and carry the user and password
// of a migration user, a member of [OwnerRole] such as one that Vault
// creates. Migrate switches to [OwnerRole] with SET ROLE before it runs
// anything, so that rotor_owner owns every object it creates and the
// migration user owns nothing and can be dropped afterwards. [Bootstrap] must
// have run first.
//
// Replicas may call Migrate at the same time. A session-level advisory lock
// lets one of them apply the migrations while the others wait, for at most 5
// minutes by goose v3.30's default, and then find nothing left to apply.
// Migrate uses one connection and closes it before it returns.
func Migrate(ctx context.Context, connConfig *pgx.ConnConfig, logger *slog.Logger) (err error) {
	if logger == nil {
		logger = slog.Default()
	}

	migrations, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: open embedded migrations: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("migrate: create session locker: %w", err)
	}

	sqlDB := stdlib.OpenDB(*connConfig, stdlib.OptionAfterConnect(setOwnerRole))
	defer func() {
		if closeErr := sqlDB.Close(); closeErr != nil {
			err = errors.Join(err, fmt.Errorf("migrate: close database: %w", closeErr))
		}
	}()
	// The advisory lock and SET ROLE belong to a session, so the lock, the
	// version table and every migration must use the same connection. goose
	// runs SQL migrations on the connection that holds the lock.
	sqlDB.SetMaxOpenConns(1)

	provider, err := goose.NewProvider(goose.DialectPostgres, sqlDB, migrations,
		goose.WithTableName(Schema+"."+VersionTable),
		goose.WithSessionLocker(locker),
		// Go migrations registered elsewhere in the binary are not rotor's.
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return fmt.Errorf("migrate: create goose provider: %w", err)
	}

	results, err := provider.Up(ctx)
	if partial, ok := errors.AsType[*goose.PartialError](err); ok {
		// Migrations before the failed one were committed, so they are
		// logged too.
		results = partial.Applied
	}
	for _, result := range results {
		logger.InfoContext(ctx, "applied database migration",
			slog.Int64("version", result.Source.Version),
			slog.String("file", path.Base(result.Source.Path)),
			slog.Duration("duration", result.Duration))
	}
	if err != nil {
		return fmt.Errorf("migrate: apply migrations as %s: %w", connConfig.User, err)
	}

	version, err := provider.GetDBVersion(ctx)
	if err != nil {
		return fmt.Errorf("migrate: read schema version: %w", err)
	}
	logger.InfoContext(ctx, "database schema is up to date",
		slog.Int64("version", version),
		slog.Int("applied", len(results)))
	return nil
}

// setOwnerRole switches a new migration session to [OwnerRole].
func setOwnerRole(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, "SET ROLE "+pgx.Identifier{OwnerRole}.Sanitize()); err != nil {
		// The stdlib connector of pgx v5.13 does not close a connection
		// whose AfterConnect hook fails, so the hook closes it.
		conn.Close(ctx)
		return fmt.Errorf("set role %s, which the user %s must be a member of: %w",
			OwnerRole, conn.Config().User, err)
	}
	return nil
}
