package db

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Pool is a pgxpool.Pool that tracks which database user each of its
// connections logged in as, so that connections of a replaced credential
// can be retired before that credential is revoked.
//
// # Retirement
//
// When the credential changes, connections that logged in with the old
// one are closed without failing the requests that hold them: the pool
// checks the user when it hands a connection out (PrepareConn) and when a
// request releases it (AfterRelease), and closes it there if the user is
// no longer current. A request that holds an old connection finishes on
// it; the next request gets a connection with the new credential.
//
// This was chosen over the alternatives because it is exact and spreads
// the reconnections out. pgxpool's Reset closes every connection at once,
// so all requests that follow reconnect together. A MaxConnLifetime below
// the lease TTL replaces connections on a timer that knows nothing of the
// lease: too long and connections outlive their credential, too short and
// the pool reconnects for no reason. Checking on acquire and release costs
// an atomic load and a string comparison per request; the rotation
// benchmark (make bench) measures the whole effect under load.
type Pool struct {
	*pgxpool.Pool
	conns *connCounter
}

// retireOldConnections installs the hooks that count connections by user
// and close those whose user is no longer current.
func (p *Pool) retireOldConnections(cfg *pgxpool.Config, isCurrent func(string) bool) {
	cfg.AfterConnect = func(_ context.Context, conn *pgx.Conn) error {
		p.conns.add(conn.Config().User, 1)
		return nil
	}
	cfg.BeforeClose = func(conn *pgx.Conn) {
		p.conns.add(conn.Config().User, -1)
	}
	if isCurrent == nil {
		return
	}

	// Returning false with a nil error makes pgxpool close the connection
	// and retry the acquire with another one.
	cfg.PrepareConn = func(_ context.Context, conn *pgx.Conn) (bool, error) {
		return isCurrent(conn.Config().User), nil
	}
	cfg.AfterRelease = func(conn *pgx.Conn) bool {
		return isCurrent(conn.Config().User)
	}
}

// Retire waits until no connection logged in as user remains, closing
// idle ones at once. Connections in use close when their requests release
// them. It returns nil once none is left, or an error naming how many
// remain when ctx ends first. The pool's IsCurrent must already report
// user as not current.
func (p *Pool) Retire(ctx context.Context, user string) error {
	for {
		// Acquiring every idle connection runs PrepareConn on each, which
		// closes the retired ones; the rest go straight back.
		for _, conn := range p.AcquireAllIdle(ctx) {
			conn.Release()
		}

		changed := p.conns.changed()
		n := p.conns.count(user)
		if n == 0 {
			return nil
		}

		select {
		case <-ctx.Done():
			return fmt.Errorf("retire connections of %s: %d still open: %w", user, n, ctx.Err())
		case <-changed:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ConnectionsByUser returns the number of open connections per database
// user.
func (p *Pool) ConnectionsByUser() map[string]int {
	return p.conns.snapshot()
}

// connCounter counts open connections by user.
type connCounter struct {
	// mu guards byUser and notify.
	mu     sync.Mutex
	byUser map[string]int

	// notify is closed and replaced whenever a count changes.
	notify chan struct{}
}

func newConnCounter() *connCounter {
	return &connCounter{byUser: make(map[string]int), notify: make(chan struct{})}
}

func (c *connCounter) add(user string, delta int) {
	c.mu.Lock()
	defer c.mu.Unlock()

	c.byUser[user] += delta
	if c.byUser[user] <= 0 {
		delete(c.byUser, user)
	}
	close(c.notify)
	c.notify = make(chan struct{})
}

func (c *connCounter) count(user string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byUser[user]
}

func (c *connCounter) changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.notify
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
