package db

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/puddle/v2"
)

// Pool is a connection pool whose connections can be moved to a new
// database credential without failing the requests that use them, so that
// the old credential can then be revoked. It counts its connections by
// database user.
//
// # Retirement
//
// Pool keeps one pgxpool.Pool at a time. Retire, called after the
// credential changes, opens a new pgxpool.Pool, connects it with the new
// credential as many connections as requests held at once from the old
// one, makes it the current one, and closes the old one. Closing waits for
// the requests that hold its connections, so they finish on the old
// credential while every request that starts later gets a connection that
// is already open with the new one.
//
// The first version checked each connection's user when the pool handed it
// out and when a request released it, and closed it there. That is exact
// and needs no second pool, but every connection is replaced on a
// request's path: after each rotation some requests waited for a new
// connection and its SCRAM login. With credentials rotating every 5
// seconds under 200 requests/s (make bench, 2 shared cores), p99 latency
// was 2.0 to 4.8 times that of static credentials. Connecting ahead of the
// switch removes that wait from the request path; docs/benchmarks.md has
// the figures.
//
// What remains is the cost of the new connections themselves, because each
// is a new Postgres backend process with a SCRAM login. On a 2-core
// virtual machine, make bench measured about 7 ms of Postgres CPU and 2 ms
// of the client's per connection. Retire therefore opens only as many as
// requests needed, warmConcurrency at a time, so that the requests served
// meanwhile keep most of the CPU. A new connection also runs each statement
// slowly the first time, so Retire runs PoolConfig.Warm on the new
// connections before the switch.
//
// A MaxConnLifetime below the lease TTL was not chosen: it replaces
// connections on a timer unrelated to the lease, so they either outlive
// their credential or are replaced for no reason.
type Pool struct {
	config  *pgxpool.Config
	current atomic.Pointer[generation]
	conns   *connCounter

	// warmConn is PoolConfig.Warm.
	warmConn func(ctx context.Context, conn *pgx.Conn) error

	// retireMu serialises the load, open and switch steps of Retire, so no
	// two calls close the same old pool.
	retireMu sync.Mutex

	// closing tracks the old pools whose Close is still waiting for
	// their connections to be released.
	closing sync.WaitGroup
}

// generation is one pgxpool.Pool of a Pool, with the maximum number of
// connections that requests have held from it at once.
type generation struct {
	*pgxpool.Pool

	// peakAcquired is updated on every acquire, so it includes requests
	// that run statements on the pool directly.
	peakAcquired atomic.Int32
}

// openGeneration opens a pgxpool.Pool with p's configuration. Like
// pgxpool.NewWithConfig, it connects only MinConns connections, in the
// background.
func (p *Pool) openGeneration(ctx context.Context) (*generation, error) {
	g := &generation{}
	cfg := p.config.Copy()
	cfg.PrepareConn = func(context.Context, *pgx.Conn) (bool, error) {
		acquired := g.Stat().AcquiredConns()
		for peak := g.peakAcquired.Load(); acquired > peak; peak = g.peakAcquired.Load() {
			if g.peakAcquired.CompareAndSwap(peak, acquired) {
				break
			}
		}
		return true, nil
	}

	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	g.Pool = pool
	return g, nil
}

// countConnections installs the hooks that count connections by user.
func (p *Pool) countConnections(cfg *pgxpool.Config) {
	cfg.AfterConnect = func(_ context.Context, conn *pgx.Conn) error {
		p.conns.add(conn.Config().User, 1)
		return nil
	}
	cfg.BeforeClose = func(conn *pgx.Conn) {
		p.conns.add(conn.Config().User, -1)
	}
}

// Retire replaces the pool's connections, which may include some logged in
// as user, with connections that log in with the credential current now,
// and returns once no connection logged in as user remains. Call it after
// the credential source has switched to the new credential.
//
// New connections are opened before the switch: as many as requests held
// at once from the old ones, at least MinConns and at least one. Counting
// the connections that requests held, rather than those open, lets the
// pool shrink: idle connections that a burst left open are not opened
// again at every rotation. If the new connections cannot be opened, the
// switch happens anyway and requests connect on demand. Retire returns an
// error when ctx ends before the old connections are released; they are
// closed as soon as they are.
func (p *Pool) Retire(ctx context.Context, user string) error {
	p.retireMu.Lock()
	old := p.current.Load()
	next, err := p.openGeneration(ctx)
	if err != nil {
		p.retireMu.Unlock()
		return fmt.Errorf("retire connections of %s: open a new pool: %w", user, err)
	}
	// The connections are opened even when ctx is about to end, because
	// without them the requests after the switch would wait to connect.
	warmCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), warmTimeout)
	warmErr := warm(warmCtx, next.Pool, max(int(old.peakAcquired.Load()), int(p.config.MinConns), 1), p.warmConn)
	cancel()
	// Requests have not used next yet, so its peak so far is the warm-up's.
	next.peakAcquired.Store(0)
	p.current.Store(next)
	p.retireMu.Unlock()

	closed := make(chan struct{})
	p.closing.Go(func() {
		old.Close()
		close(closed)
	})

	select {
	case <-closed:
	case <-ctx.Done():
		return fmt.Errorf("retire connections of %s: %d still in use: %w", user, p.conns.count(user), ctx.Err())
	}
	if warmErr != nil {
		return fmt.Errorf("retire connections of %s: old connections closed, but new ones could not be opened and warmed ahead: %w", user, warmErr)
	}
	return nil
}

// warmTimeout bounds the time Retire spends opening connections ahead.
const warmTimeout = 5 * time.Second

// warmConcurrency is how many connections warm opens at once. Each one
// costs Postgres a new backend process and rotor a SCRAM key derivation,
// so opening them all at once takes CPU from the requests being served
// meanwhile.
const warmConcurrency = 2

// warm opens n connections in pool, warmConcurrency at a time, runs
// warmConn on each unless it is nil, and returns them to the pool idle.
func warm(ctx context.Context, pool *pgxpool.Pool, n int, warmConn func(context.Context, *pgx.Conn) error) error {
	n = min(n, int(pool.Config().MaxConns))
	conns := make([]*pgxpool.Conn, n)
	errs := make([]error, n)

	// Every connection stays acquired until all are open, so that each
	// Acquire opens a new one rather than reusing one opened before.
	slots := make(chan struct{}, warmConcurrency)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()

			conns[i], errs[i] = pool.Acquire(ctx)
			if errs[i] == nil && warmConn != nil {
				errs[i] = warmConn(ctx, conns[i].Conn())
			}
		})
	}
	wg.Wait()

	for _, c := range conns {
		if c != nil {
			c.Release()
		}
	}
	return errors.Join(errs...)
}

// ConnectionsByUser returns the number of open connections per database
// user.
func (p *Pool) ConnectionsByUser() map[string]int {
	return p.conns.snapshot()
}

// Close closes the pool, waiting for every connection to be released,
// including those of pools that Retire is still closing.
func (p *Pool) Close() {
	p.retireMu.Lock()
	defer p.retireMu.Unlock()

	p.current.Load().Close()
	p.closing.Wait()
}

// Acquire returns a connection from the current pool. The caller must
// release it.
func (p *Pool) Acquire(ctx context.Context) (*pgxpool.Conn, error) {
	for {
		pool := p.current.Load()
		conn, err := pool.Acquire(ctx)
		if p.replaced(pool, err) {
			continue
		}
		return conn, err
	}
}

// Exec runs sql on a connection from the current pool.
func (p *Pool) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	for {
		pool := p.current.Load()
		tag, err := pool.Exec(ctx, sql, args...)
		if p.replaced(pool, err) {
			continue
		}
		return tag, err
	}
}

// Query runs sql on a connection from the current pool; the connection
// returns to the pool when the rows are closed.
func (p *Pool) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	for {
		pool := p.current.Load()
		rows, err := pool.Query(ctx, sql, args...)
		if p.replaced(pool, err) {
			continue
		}
		return rows, err
	}
}

// QueryRow runs sql on a connection from the current pool when Scan is
// called on the result.
func (p *Pool) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return &row{p: p, ctx: ctx, sql: sql, args: args}
}

// Ping checks that a connection of the current pool reaches the database.
func (p *Pool) Ping(ctx context.Context) error {
	return p.current.Load().Ping(ctx)
}

// Reset closes every connection of the current pool: idle ones at once,
// those in use when they are released.
func (p *Pool) Reset() {
	p.current.Load().Reset()
}

// Config returns a copy of the configuration of the current pool.
func (p *Pool) Config() *pgxpool.Config {
	return p.current.Load().Config()
}

// Stat returns the statistics of the current pool.
func (p *Pool) Stat() *pgxpool.Stat {
	return p.current.Load().Stat()
}

// replaced reports whether err comes from a pool that Retire closed after
// the caller loaded it, so the caller should try the current one.
func (p *Pool) replaced(pool *generation, err error) bool {
	return errors.Is(err, puddle.ErrClosedPool) && p.current.Load() != pool
}

// row defers QueryRow to Scan, so that a pool closed in between can be
// replaced by the current one.
type row struct {
	p    *Pool
	ctx  context.Context
	sql  string
	args []any
}

func (r *row) Scan(dest ...any) error {
	for {
		pool := r.p.current.Load()
		err := pool.QueryRow(r.ctx, r.sql, r.args...).Scan(dest...)
		if r.p.replaced(pool, err) {
			continue
		}
		return err
	}
}

// connCounter counts open connections by user.
type connCounter struct {
	// mu guards byUser.
	mu     sync.Mutex
	byUser map[string]int
}

func newConnCounter() *connCounter {
	return &connCounter{byUser: make(map[string]int)}
}

func (c *connCounter) add(user string, delta int) {
	c.mu.Lock()
	defer c.mu.Unlock()

	c.byUser[user] += delta
	if c.byUser[user] <= 0 {
		delete(c.byUser, user)
	}
}

func (c *connCounter) count(user string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byUser[user]
}

func (c *connCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()

	out := make(map[string]int, len(c.byUser))
	for user, n := range c.byUser {
		out[user] = n
	}
	return out
}
