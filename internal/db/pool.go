package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// CredentialFunc returns the user and password for a new database
// connection, typically from the holder of the current Vault lease.
//
// The pool calls it from its own goroutines each time it opens a
// connection, so it must be safe for concurrent use. A connection attempt
// waits for it, so it should return cached credentials rather than ask Vault
// each time.
type CredentialFunc func(ctx context.Context) (user, password string, err error)

// PoolConfig configures [NewPool].
//
// A zero size or duration keeps the value that pgxpool.ParseConfig takes
// from the matching pool_* parameter of ConnString, or else pgx's default,
// which each field lists as of pgx v5.13.
type PoolConfig struct {
	// ConnString is a PostgreSQL URL or key=value connection string that
	// names the host, port, database and TLS settings, for example
	// "postgres://db.internal:5432/rotor?sslmode=verify-full". Connection
	// strings and the PG* environment variables follow libpq's rules. A
	// user or password in ConnString, in PGUSER or PGPASSWORD, or in a
	// password file is ignored, because every connection uses Credentials.
	ConnString string

	// Credentials supplies the user and password of every new connection.
	// It is required.
	Credentials CredentialFunc

	// MaxConns is the maximum number of open connections. The default is
	// the greater of 4 and runtime.NumCPU().
	MaxConns int32

	// MinConns is the number of connections that the pool keeps open even
	// when they are idle. The default is 0.
	MinConns int32

	// MaxConnLifetime is the age after which the pool closes a connection
	// once it is idle. The default is one hour.
	MaxConnLifetime time.Duration

	// MaxConnIdleTime is how long a connection may stay idle before the
	// pool closes it. The default is 30 minutes.
	MaxConnIdleTime time.Duration

	// HealthCheckPeriod is the interval at which the pool closes expired
	// and idle connections and opens new ones to keep MinConns. The
	// default is one minute.
	HealthCheckPeriod time.Duration

	// Warm, if set, runs on each connection that Retire opens ahead of a
	// switch to a new credential, before any request can use it, to fill
	// the new backend's caches. WarmNotes fits.
	Warm func(ctx context.Context, conn *pgx.Conn) error
}

// NewPool returns a connection pool whose connections log in with the user
// and password that cfg.Credentials returns at the moment each connection
// opens. Connections opened earlier keep the credentials they logged in
// with until they close.
//
// NewPool itself does not connect, and the pool opens only cfg.MinConns
// connections in the background, so a connection error first appears on
// use. Call Ping on the pool to check that the database is reachable. When
// cfg.Credentials fails, the connection attempt fails with an error that
// wraps its error. The caller must close the pool.
func NewPool(ctx context.Context, cfg PoolConfig) (*Pool, error) {
	if cfg.Credentials == nil {
		return nil, errors.New("new pool: credential source is missing: set PoolConfig.Credentials")
	}

	poolConfig, err := pgxpool.ParseConfig(cfg.ConnString)
	if err != nil {
		return nil, fmt.Errorf("new pool: parse connection string: %w", err)
	}
	if err := applyPoolSettings(poolConfig, cfg); err != nil {
		return nil, fmt.Errorf("new pool: %w", err)
	}

	// ParseConfig fills in a user and password from the connection string,
	// the environment or a password file. Clearing them keeps any
	// connection from logging in with them.
	poolConfig.ConnConfig.User = ""
	poolConfig.ConnConfig.Password = ""

	// The pool passes BeforeConnect a copy of ConnConfig made for one
	// connection, so setting its fields affects only that connection.
	poolConfig.BeforeConnect = func(ctx context.Context, connConfig *pgx.ConnConfig) error {
		user, password, err := cfg.Credentials(ctx)
		if err != nil {
			return fmt.Errorf("get database credentials: %w", err)
		}
		if user == "" {
			return errors.New("get database credentials: the credential source returned an empty user")
		}
		connConfig.User = user
		connConfig.Password = password
		return nil
	}

	p := &Pool{config: poolConfig, conns: newConnCounter(), warmConn: cfg.Warm}
	p.countConnections(poolConfig)

	first, err := p.openGeneration(ctx)
	if err != nil {
		return nil, fmt.Errorf("new pool: %w", err)
	}
	p.current.Store(first)
	return p, nil
}

// applyPoolSettings copies the non-zero sizes and durations of cfg to
// poolConfig and checks the result.
func applyPoolSettings(poolConfig *pgxpool.Config, cfg PoolConfig) error {
	if cfg.MaxConns < 0 || cfg.MinConns < 0 {
		return fmt.Errorf("invalid pool size: MaxConns is %d and MinConns is %d, neither may be negative",
			cfg.MaxConns, cfg.MinConns)
	}
	if cfg.MaxConnLifetime < 0 || cfg.MaxConnIdleTime < 0 || cfg.HealthCheckPeriod < 0 {
		return fmt.Errorf("invalid pool duration: MaxConnLifetime is %v, MaxConnIdleTime is %v and HealthCheckPeriod is %v, none may be negative",
			cfg.MaxConnLifetime, cfg.MaxConnIdleTime, cfg.HealthCheckPeriod)
	}

	if cfg.MaxConns > 0 {
		poolConfig.MaxConns = cfg.MaxConns
	}
	if cfg.MinConns > 0 {
		poolConfig.MinConns = cfg.MinConns
	}
	if cfg.MaxConnLifetime > 0 {
		poolConfig.MaxConnLifetime = cfg.MaxConnLifetime
	}
	if cfg.MaxConnIdleTime > 0 {
		poolConfig.MaxConnIdleTime = cfg.MaxConnIdleTime
	}
	if cfg.HealthCheckPeriod > 0 {
		poolConfig.HealthCheckPeriod = cfg.HealthCheckPeriod
	}

	if poolConfig.MinConns > poolConfig.MaxConns {
		return fmt.Errorf("invalid pool size: MinConns %d is greater than MaxConns %d",
			poolConfig.MinConns, poolConfig.MaxConns)
	}
	return nil
}
