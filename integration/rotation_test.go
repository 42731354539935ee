package integration

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"example.com/rotor/internal/provision"
)

// roleWatch samples pg_roles and pg_stat_activity while a test runs.
type roleWatch struct {
	stop context.CancelFunc
	done sync.WaitGroup

	// mu guards the fields below.
	mu sync.Mutex
	// maxRoles is the most Vault-made roles seen at once.
	maxRoles int
	// orphans lists sessions seen running as a role that no longer
	// exists, that is, sessions of a revoked user.
	orphans []string
}

// watchRoles samples the database every 200 ms until the returned watch is
// stopped.
func watchRoles(t *testing.T, s *stack) *roleWatch {
	t.Helper()

	conn := s.connectAsSuperuser(t)
	ctx, cancel := context.WithCancel(t.Context())
	w := &roleWatch{stop: cancel}
	w.done.Go(func() {
		ticker := time.NewTicker(200 * time.Millisecond)
		defer ticker.Stop()
		for {
			w.sample(ctx, conn)
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
		}
	})
	t.Cleanup(w.Stop)
	return w
}

func (w *roleWatch) sample(ctx context.Context, conn *pgx.Conn) {
	var roles int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-%'`).Scan(&roles); err != nil {
		return
	}
	rows, err := conn.Query(ctx, `
		SELECT a.usename FROM pg_stat_activity a
		WHERE a.usename LIKE 'v-%'
		  AND NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = a.usename)`)
	if err != nil {
		return
	}
	orphans, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	w.maxRoles = max(w.maxRoles, roles)
	w.orphans = append(w.orphans, orphans...)
}

// Stop ends the sampling.
func (w *roleWatch) Stop() {
	w.stop()
	w.done.Wait()
}

func (w *roleWatch) check(t *testing.T) {
	t.Helper()
	w.Stop()

	w.mu.Lock()
	defer w.mu.Unlock()
	t.Logf("at most %d Vault-made roles at once", w.maxRoles)
	if w.maxRoles > 2 {
		t.Errorf("saw %d Vault-made roles at once, want at most 2", w.maxRoles)
	}
	if len(w.orphans) > 0 {
		t.Errorf("sessions of revoked users were still open: %v", w.orphans)
	}
}

// countLog counts rotor's log lines that contain every one of parts.
func countLog(s *stack, parts ...string) int {
	n := 0
	for line := range strings.Lines(s.logs.String()) {
		matched := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				matched = false
				break
			}
		}
		if matched {
			n++
		}
	}
	return n
}

// metricValue reads one sample from rotor's /metrics, or 0 when absent.
func metricValue(t *testing.T, s *stack, series string) float64 {
	t.Helper()

	resp, err := http.Get(s.adminURL() + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)

	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindSubmatch(body)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// vaultRolesLeft counts the roles Vault made that still exist.
func vaultRolesLeft(t *testing.T, s *stack) int {
	t.Helper()

	var n int
	conn := s.connectAsSuperuser(t)
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRotationUnderLoad runs steady traffic while database leases of 10 s,
// renewable up to 30 s, end and are replaced. Every replacement must be
// invisible to clients: old connections retire, old leases are revoked,
// and nothing is lost.
func TestRotationUnderLoad(t *testing.T) {
	s := startStack(t, provision.Options{RuntimeTTL: 10 * time.Second, RuntimeMaxTTL: 30 * time.Second})
	goroutinesBefore := runtime.NumGoroutine()
	roles := watchRoles(t, s)
	l := startLoad(t, s.client(t, alice), s.baseURL(), 50, 5)

	// At least two minutes, and at least five rotations after the first
	// credential; both bounded, so the test always ends.
	start := time.Now()
	for time.Since(start) < 2*time.Minute || (countLog(s, "database credential issued", "reason=lease") < 5 && time.Since(start) < 4*time.Minute) {
		time.Sleep(time.Second)
	}
	l.Stop()
	goroutinesAfter := settledGoroutines(goroutinesBefore+goroutineAllowance, 15*time.Second)

	rotations := countLog(s, "database credential issued", "reason=lease")
	t.Logf("%d rotations in %v", rotations, time.Since(start).Round(time.Second))
	if rotations < 5 {
		t.Errorf("got %d rotations, want at least 5", rotations)
	}
	if revoked := countLog(s, "database lease revoked", "reason=replaced"); revoked < rotations-1 {
		t.Errorf("got %d replaced leases revoked, want at least %d", revoked, rotations-1)
	}
	l.requireNoFailures(t)
	roles.check(t)
	l.checkAckedWritesReadable(t)

	// Goroutines that outlive a rotation would pile up with each one.
	t.Logf("goroutines: %d before the load, %d after", goroutinesBefore, goroutinesAfter)
	if goroutinesAfter > goroutinesBefore+goroutineAllowance {
		t.Errorf("goroutines grew from %d to %d over %d rotations", goroutinesBefore, goroutinesAfter, rotations)
	}

	s.stopRotor()
	if n := vaultRolesLeft(t, s); n != 0 {
		t.Errorf("%d Vault-made roles left after shutdown, want 0: each lease is revoked and its role dropped", n)
	}
}

// goroutineAllowance is how many more goroutines than before the load
// TestRotationUnderLoad accepts after it: HTTP/2 and Vault client
// connections that stay open, and the renewal of the current lease.
const goroutineAllowance = 20

// settledGoroutines returns the number of goroutines once it is at most
// limit, or the lowest number seen within wait. A rotation in progress
// runs a few goroutines for seconds (the old lease's retirement, the old
// pool's close), so one count taken at an arbitrary moment can exceed a
// limit that no leak has reached.
func settledGoroutines(limit int, wait time.Duration) int {
	lowest := runtime.NumGoroutine()
	for deadline := time.Now().Add(wait); lowest > limit && time.Now().Before(deadline); {
		time.Sleep(250 * time.Millisecond)
		lowest = min(lowest, runtime.NumGoroutine())
	}
	return lowest
}
