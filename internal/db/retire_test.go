package db_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"example.com/rotor/internal/db"
	"example.com/rotor/internal/notes"
	"example.com/rotor/internal/testenv"
)

// TestPoolRetire rotates from credential A to B while a request holds a
// connection logged in as A. The held request must finish on A. Before the
// switch the pool must open as many connections as B as it had as A, so
// that no later request waits to connect, and every connection a request
// gets after the switch must log in as B. Retire must return only once A's
// last connection is closed, so that A can then be revoked.
func TestPoolRetire(t *testing.T) {
	t.Parallel()

	pg, superuser, roles := startWithLoginRoles(t, 2)
	userA, passwordA := roles[0].user, roles[0].password
	userB, passwordB := roles[1].user, roles[1].password

	var holder credentialHolder
	holder.set(userA, passwordA)
	pool := newRetirePool(t, pg, db.PoolConfig{Credentials: holder.credentials})

	// Open idle connections as A, and hold one more.
	var idle []*pgxpool.Conn
	for range 3 {
		idle = append(idle, acquire(t, pool))
	}
	held := acquire(t, pool)
	release := sync.OnceFunc(held.Release)
	// Registered after pool.Close, so it runs first: Close waits for every
	// acquired connection.
	t.Cleanup(release)
	for _, c := range idle {
		c.Release()
	}
	if n := pool.ConnectionsByUser()[userA]; n != 4 {
		t.Fatalf("got %d connections as %s, want 4", n, userA)
	}

	holder.set(userB, passwordB)
	retired := make(chan error, 1)
	go func() { retired <- pool.Retire(t.Context(), userA) }()

	deadline := time.Now().Add(10 * time.Second)
	for pool.ConnectionsByUser()[userB] < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("got %d connections as %s, want 4 opened ahead of the switch", pool.ConnectionsByUser()[userB], userB)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for range 10 {
		if got := currentUser(t, pool); got != userB {
			t.Fatalf("a connection after the rotation logged in as %s, want %s", got, userB)
		}
	}
	if n := pool.ConnectionsByUser()[userB]; n != 4 {
		t.Errorf("got %d connections as %s after 10 queries, want the 4 opened ahead", n, userB)
	}

	select {
	case err := <-retired:
		t.Fatalf("Retire returned %v while a request still held a connection as %s", err, userA)
	case <-time.After(300 * time.Millisecond):
	}

	// The held request completes on its old connection.
	var one int
	if err := held.QueryRow(t.Context(), "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("query on the held connection: %v", err)
	}
	release()

	select {
	case err := <-retired:
		if err != nil {
			t.Fatalf("Retire: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Retire did not return after the last connection was released")
	}
	if n := pool.ConnectionsByUser()[userA]; n != 0 {
		t.Errorf("got %d connections as %s after Retire, want 0", n, userA)
	}

	// With no session left, the role can be dropped as Vault's revocation
	// statements do.
	dropRole(t, superuser, userA)
}

// TestPoolRetireShrinks rotates twice. Requests hold four connections at
// once as A, so Retire opens four as B. Then they run one at a time, so the
// next Retire opens only one as C, although four connections as B are
// open.
func TestPoolRetireShrinks(t *testing.T) {
	t.Parallel()

	pg, _, roles := startWithLoginRoles(t, 3)
	userA, passwordA := roles[0].user, roles[0].password
	userB, passwordB := roles[1].user, roles[1].password
	userC, passwordC := roles[2].user, roles[2].password

	var holder credentialHolder
	holder.set(userA, passwordA)
	pool := newRetirePool(t, pg, db.PoolConfig{Credentials: holder.credentials})

	var held []*pgxpool.Conn
	for range 4 {
		held = append(held, acquire(t, pool))
	}
	for _, c := range held {
		c.Release()
	}

	holder.set(userB, passwordB)
	if err := pool.Retire(t.Context(), userA); err != nil {
		t.Fatalf("Retire %s: %v", userA, err)
	}
	if n := pool.ConnectionsByUser()[userB]; n != 4 {
		t.Fatalf("got %d connections as %s after the first rotation, want 4, as many as were held at once", n, userB)
	}

	for range 5 {
		if got := currentUser(t, pool); got != userB {
			t.Fatalf("a query after the first rotation ran as %s, want %s", got, userB)
		}
	}

	holder.set(userC, passwordC)
	if err := pool.Retire(t.Context(), userB); err != nil {
		t.Fatalf("Retire %s: %v", userB, err)
	}
	if n := pool.ConnectionsByUser()[userC]; n != 1 {
		t.Errorf("got %d connections as %s after the second rotation, want 1, because requests held one at a time", n, userC)
	}
	if n := pool.ConnectionsByUser()[userB]; n != 0 {
		t.Errorf("got %d connections as %s after Retire, want 0", n, userB)
	}
}

// TestPoolRetireOpensTwoAtATime holds eight connections at once and
// rotates. The credential source returns for each new connection after
// 50 ms, so connections that Retire opened at once would overlap there.
// At most two may.
func TestPoolRetireOpensTwoAtATime(t *testing.T) {
	t.Parallel()

	pg, _, roles := startWithLoginRoles(t, 2)
	userA, passwordA := roles[0].user, roles[0].password
	userB, passwordB := roles[1].user, roles[1].password

	var holder credentialHolder
	holder.set(userA, passwordA)
	var (
		mu                  sync.Mutex
		connecting, maxSeen int
	)
	slowCredentials := func(ctx context.Context) (string, string, error) {
		mu.Lock()
		connecting++
		maxSeen = max(maxSeen, connecting)
		mu.Unlock()
		defer func() {
			mu.Lock()
			connecting--
			mu.Unlock()
		}()

		time.Sleep(50 * time.Millisecond)
		return holder.credentials(ctx)
	}
	pool := newRetirePool(t, pg, db.PoolConfig{Credentials: slowCredentials})

	var held []*pgxpool.Conn
	for range 8 {
		held = append(held, acquire(t, pool))
	}
	for _, c := range held {
		c.Release()
	}

	mu.Lock()
	maxSeen = 0
	mu.Unlock()
	holder.set(userB, passwordB)
	if err := pool.Retire(t.Context(), userA); err != nil {
		t.Fatalf("Retire %s: %v", userA, err)
	}

	if n := pool.ConnectionsByUser()[userB]; n != 8 {
		t.Errorf("got %d connections as %s after Retire, want 8", n, userB)
	}
	mu.Lock()
	defer mu.Unlock()
	if maxSeen > 2 {
		t.Errorf("Retire opened up to %d connections at once, want at most 2", maxSeen)
	}
}

// TestPoolRetireWarms checks that Retire runs PoolConfig.Warm on each
// connection that it opens ahead, before requests get them, and that
// connections opened on demand skip it.
func TestPoolRetireWarms(t *testing.T) {
	t.Parallel()

	pg, _, roles := startWithLoginRoles(t, 2)
	userA, passwordA := roles[0].user, roles[0].password
	userB, passwordB := roles[1].user, roles[1].password

	var holder credentialHolder
	holder.set(userA, passwordA)
	pool := newRetirePool(t, pg, db.PoolConfig{
		Credentials: holder.credentials,
		Warm: func(ctx context.Context, conn *pgx.Conn) error {
			_, err := conn.Exec(ctx, "SET application_name = 'warmed'")
			return err
		},
	})

	held := []*pgxpool.Conn{acquire(t, pool), acquire(t, pool), acquire(t, pool)}
	for _, c := range held {
		if name := applicationName(t, c); name == "warmed" {
			t.Errorf("a connection opened on demand has application_name %q, want it not warmed", name)
		}
	}
	for _, c := range held {
		c.Release()
	}

	holder.set(userB, passwordB)
	if err := pool.Retire(t.Context(), userA); err != nil {
		t.Fatalf("Retire %s: %v", userA, err)
	}

	held = []*pgxpool.Conn{acquire(t, pool), acquire(t, pool), acquire(t, pool)}
	defer func() {
		for _, c := range held {
			c.Release()
		}
	}()
	for i, c := range held {
		if name := applicationName(t, c); name != "warmed" {
			t.Errorf("connection %d after Retire has application_name %q, want %q set by Warm", i, name, "warmed")
		}
	}
	if n := pool.ConnectionsByUser()[userB]; n != 3 {
		t.Errorf("got %d connections as %s, want the 3 opened ahead", n, userB)
	}
}

func applicationName(tb testing.TB, conn *pgxpool.Conn) string {
	tb.Helper()

	var name string
	if err := conn.QueryRow(context.Background(), "SELECT current_setting('application_name')").Scan(&name); err != nil {
		tb.Fatalf("read application_name: %v", err)
	}
	return name
}

// TestNotesRetryAfterRejectedLogin drops the role the pool logs in as, as an
// operator's revocation does. The repository must report the rejected user,
// wait for the new credential and run the statement again.
func TestNotesRetryAfterRejectedLogin(t *testing.T) {
	t.Parallel()

	pg, superuser, roles := startWithLoginRoles(t, 2)
	userA, passwordA := roles[0].user, roles[0].password
	userB, passwordB := roles[1].user, roles[1].password

	var holder credentialHolder
	holder.set(userA, passwordA)
	pool := newPool(t, pg, holder.credentials)

	var mu sync.Mutex
	var rejected []string
	store := db.NewNotes(pool).WithRetry(&db.Retry{
		CredentialRejected: func(ctx context.Context, user string) error {
			mu.Lock()
			rejected = append(rejected, user)
			mu.Unlock()
			holder.set(userB, passwordB)
			return nil
		},
	})

	pool.Reset()
	if _, err := superuser.Exec(t.Context(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, userA); err != nil {
		t.Fatal(err)
	}
	dropRole(t, superuser, userA)

	note, err := store.Create(t.Context(), "alice", "after revocation", "")
	if err != nil {
		t.Fatalf("create after the revocation: %v", err)
	}
	if _, err := store.Get(t.Context(), "alice", note.ID); err != nil {
		t.Fatalf("get the note: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(rejected) != 1 || rejected[0] != userA {
		t.Errorf("got rejected users %v, want [%s]", rejected, userA)
	}
}

// TestNotesRetryGivesUp checks that a statement whose retries run out
// reports notes.ErrUnavailable, so the API responds with 503 and never
// acknowledges it.
func TestNotesRetryGivesUp(t *testing.T) {
	t.Parallel()

	pool, err := db.NewPool(t.Context(), db.PoolConfig{
		// Nothing listens on port 1 of loopback, so every connect fails
		// before a statement is sent.
		ConnString:  "postgres://127.0.0.1:1/rotor?sslmode=disable&connect_timeout=1",
		Credentials: staticCredentials("nobody", "nothing"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	store := db.NewNotes(pool).WithRetry(&db.Retry{Attempts: 2, MaxWait: time.Second})

	_, err = store.Create(t.Context(), "alice", "t", "b")
	if !errors.Is(err, notes.ErrUnavailable) {
		t.Errorf("got %v, want an error wrapping notes.ErrUnavailable", err)
	}
	var connectErr *pgconn.ConnectError
	if !errors.As(err, &connectErr) {
		t.Errorf("got %v, want the connect error kept in the chain", err)
	}
}

func acquire(tb testing.TB, pool *db.Pool) *pgxpool.Conn {
	tb.Helper()

	conn, err := pool.Acquire(context.Background())
	if err != nil {
		tb.Fatalf("acquire a connection: %v", err)
	}
	return conn
}

// loginRole is a Postgres login role in rotor's runtime group, as Vault
// creates them.
type loginRole struct {
	user, password string
}

// startWithLoginRoles starts Postgres with rotor's roles and schema, and
// creates n login roles in the runtime group.
func startWithLoginRoles(t *testing.T, n int) (*testenv.Postgres, *pgx.Conn, []loginRole) {
	t.Helper()

	pg := startPostgres(t)
	superuser := pg.Connect(t)
	bootstrap(t, superuser)
	migrate(t, pg, superuser)
	roles := make([]loginRole, n)
	for i := range roles {
		roles[i].user, roles[i].password = createLoginRole(t, superuser, "v-app", db.AppRole)
	}
	return pg, superuser, roles
}

// newRetirePool opens a pool to pg with cfg, at most 8 connections unless
// cfg sets MaxConns, and closes it when the test ends.
func newRetirePool(t *testing.T, pg *testenv.Postgres, cfg db.PoolConfig) *db.Pool {
	t.Helper()

	cfg.ConnString = connStringWithoutCredentials(t, pg)
	if cfg.MaxConns == 0 {
		cfg.MaxConns = 8
	}
	pool, err := db.NewPool(t.Context(), cfg)
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}
