package db_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"example.com/rotor/internal/db"
)

// credentialHolder is a fake holder of a Vault lease. A test swaps the
// credentials while the pool reads them from its own goroutines.
type credentialHolder struct {
	mu       sync.Mutex
	user     string
	password string
	calls    int
}

func (h *credentialHolder) set(user, password string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.user, h.password = user, password
}

func (h *credentialHolder) callCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls
}

func (h *credentialHolder) credentials(context.Context) (string, string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	return h.user, h.password, nil
}

// currentUser returns the role that a connection from pool runs as.
func currentUser(tb testing.TB, pool *db.Pool) string {
	tb.Helper()

	var user string
	if err := pool.QueryRow(context.Background(), "SELECT current_user").Scan(&user); err != nil {
		tb.Fatalf("SELECT current_user: %v", err)
	}
	return user
}

func TestNewPool(t *testing.T) {
	t.Parallel()

	pg := startPostgres(t)
	superuser := pg.Connect(t)
	bootstrap(t, superuser)
	ctx := t.Context()

	t.Run("credentials per connection", func(t *testing.T) {
		firstUser, firstPassword := createLoginRole(t, superuser, "v-app", db.AppRole)
		secondUser, secondPassword := createLoginRole(t, superuser, "v-app", db.AppRole)

		var holder credentialHolder
		holder.set(firstUser, firstPassword)
		pool := newPool(t, pg, holder.credentials)

		if got := currentUser(t, pool); got != firstUser {
			t.Fatalf("current_user before the change: got %s, want %s", got, firstUser)
		}
		callsBefore := holder.callCount()

		holder.set(secondUser, secondPassword)
		// Open connections keep the user they logged in with, so the pool
		// must open a new one to pick up the change.
		pool.Reset()

		if got := currentUser(t, pool); got != secondUser {
			t.Errorf("current_user after the change and Reset: got %s, want %s", got, secondUser)
		}
		if calls := holder.callCount(); calls <= callsBefore {
			t.Errorf("credential calls: got %d after Reset, want more than %d", calls, callsBefore)
		}
	})

	t.Run("credentials in connection string ignored", func(t *testing.T) {
		user, password := createLoginRole(t, superuser, "v-app", db.AppRole)

		// pg.URL names the superuser and its password.
		pool, err := db.NewPool(ctx, db.PoolConfig{
			ConnString:  pg.URL,
			Credentials: staticCredentials(user, password),
		})
		if err != nil {
			t.Fatalf("NewPool: %v", err)
		}
		t.Cleanup(pool.Close)

		if got := currentUser(t, pool); got != user {
			t.Errorf("current_user: got %s, want %s", got, user)
		}
	})

	t.Run("credential error", func(t *testing.T) {
		errSealed := errors.New("vault is sealed")
		pool := newPool(t, pg, func(context.Context) (string, string, error) {
			return "", "", errSealed
		})

		err := pool.Ping(ctx)
		if !errors.Is(err, errSealed) {
			t.Errorf("Ping: got error %v, want one that wraps %v", err, errSealed)
		}
	})

	t.Run("empty user", func(t *testing.T) {
		pool := newPool(t, pg, staticCredentials("", "password"))

		err := pool.Ping(ctx)
		if err == nil || !strings.Contains(err.Error(), "empty user") {
			t.Errorf("Ping: got error %v, want one about the empty user", err)
		}
	})
}

func TestNewPoolInvalidConfig(t *testing.T) {
	credentials := staticCredentials("user", "password")
	const connString = "postgres://db.invalid:5432/rotor?sslmode=disable"

	tests := []struct {
		name string
		cfg  db.PoolConfig
	}{
		{"missing credentials", db.PoolConfig{ConnString: connString}},
		{"malformed connection string", db.PoolConfig{ConnString: "postgres://%zz", Credentials: credentials}},
		{"negative MaxConns", db.PoolConfig{ConnString: connString, Credentials: credentials, MaxConns: -1}},
		{"negative MaxConnIdleTime", db.PoolConfig{ConnString: connString, Credentials: credentials, MaxConnIdleTime: -1}},
		{"MinConns above MaxConns", db.PoolConfig{ConnString: connString, Credentials: credentials, MinConns: 5, MaxConns: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, err := db.NewPool(t.Context(), tt.cfg)
			if err == nil {
				pool.Close()
				t.Fatal("NewPool: got no error, want one")
			}
		})
	}
}

func TestNewPoolSettings(t *testing.T) {
	credentials := staticCredentials("user", "password")

	t.Run("fields override connection string", func(t *testing.T) {
		pool, err := db.NewPool(t.Context(), db.PoolConfig{
			ConnString:        "postgres://db.invalid:5432/rotor?pool_max_conns=9",
			Credentials:       credentials,
			MaxConns:          7,
			MaxConnLifetime:   5 * time.Minute,
			MaxConnIdleTime:   2 * time.Minute,
			HealthCheckPeriod: 10 * time.Second,
		})
		if err != nil {
			t.Fatalf("NewPool: %v", err)
		}
		defer pool.Close()

		config := pool.Config()
		if config.MaxConns != 7 {
			t.Errorf("MaxConns: got %d, want 7", config.MaxConns)
		}
		if config.MaxConnLifetime != 5*time.Minute {
			t.Errorf("MaxConnLifetime: got %v, want 5m", config.MaxConnLifetime)
		}
		if config.MaxConnIdleTime != 2*time.Minute {
			t.Errorf("MaxConnIdleTime: got %v, want 2m", config.MaxConnIdleTime)
		}
		if config.HealthCheckPeriod != 10*time.Second {
			t.Errorf("HealthCheckPeriod: got %v, want 10s", config.HealthCheckPeriod)
		}
	})

	t.Run("zero fields keep connection string", func(t *testing.T) {
		pool, err := db.NewPool(t.Context(), db.PoolConfig{
			ConnString:  "postgres://db.invalid:5432/rotor?pool_max_conns=9",
			Credentials: credentials,
		})
		if err != nil {
			t.Fatalf("NewPool: %v", err)
		}
		defer pool.Close()

		if got := pool.Config().MaxConns; got != 9 {
			t.Errorf("MaxConns: got %d, want 9 from pool_max_conns", got)
		}
	})
}
