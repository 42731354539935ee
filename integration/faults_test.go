package integration

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"example.com/rotor/internal/provision"
	"example.com/rotor/internal/testenv"
)

// TestOperatorRevocation revokes rotor's database lease behind its back,
// under load. Vault's revocation statements end the user's sessions and
// drop the role. rotor must notice, read one new credential however many
// requests noticed, and lose no acknowledged write.
func TestOperatorRevocation(t *testing.T) {
	cases := []struct {
		name   string
		revoke func(t *testing.T, s *stack)
	}{
		{"lease", func(t *testing.T, s *stack) {
			for _, id := range liveLeases(t, s) {
				if _, err := s.root.Logical().Write("sys/leases/revoke/"+id, nil); err != nil {
					t.Fatalf("revoke lease %s: %v", id, err)
				}
			}
		}},
		{"prefix", func(t *testing.T, s *stack) {
			if _, err := s.root.Logical().Write("sys/leases/revoke-prefix/database/creds/"+provision.RuntimeRole, nil); err != nil {
				t.Fatalf("revoke prefix: %v", err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startStack(t, provision.Options{})
			client := s.client(t, alice)
			l := startLoad(t, client, s.baseURL(), 50, 5)
			time.Sleep(3 * time.Second)

			revokedAt := time.Now()
			tc.revoke(t, s)
			recovered := waitForRecovery(t, s, client, revokedAt)
			t.Logf("serving on a new credential %v after the revocation", recovered.Round(time.Millisecond))

			time.Sleep(3 * time.Second)
			l.Stop()

			if n := countLog(s, "database credential issued", "reason=rejected"); n != 1 {
				t.Errorf("got %d credentials read after the rejection, want exactly 1", n)
			}
			for _, f := range l.Failures() {
				t.Logf("failed during the revocation: %s", f)
			}
			t.Logf("%d requests, %d failed", l.requests.Load(), len(l.Failures()))
			l.checkAckedWritesReadable(t)
		})
	}
}

// liveLeases lists the ids of the runtime role's leases.
func liveLeases(t *testing.T, s *stack) []string {
	t.Helper()

	prefix := "database/creds/" + provision.RuntimeRole + "/"
	list, err := s.root.Logical().List("sys/leases/lookup/" + prefix)
	if err != nil || list == nil {
		t.Fatalf("list leases: %v", err)
	}
	var ids []string
	for _, k := range list.Data["keys"].([]any) {
		ids = append(ids, prefix+k.(string))
	}
	return ids
}

// waitForRecovery returns how long after since rotor logged a credential
// read because the old one was rejected and then served a write. It gives
// up after 30 seconds.
func waitForRecovery(t *testing.T, s *stack, client *http.Client, since time.Time) time.Duration {
	t.Helper()

	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if countLog(s, "database credential issued", "reason=rejected") > 0 {
			status, _, _ := do(t, client, "POST", s.baseURL()+"/v1/notes", "application/json", []byte(`{"title":"probe","body":""}`))
			if status == http.StatusCreated {
				return time.Since(since)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("rotor did not recover from the revocation within 30s")
	return 0
}

// TestTokenRelogin runs with Vault tokens of 30 s, renewable up to 60 s,
// and database leases of 5 minutes. The token's expiry would revoke the
// database lease it issued, so rotor must log in again and move to a
// credential issued under the new token before each token expires.
func TestTokenRelogin(t *testing.T) {
	s := startStack(t, provision.Options{
		TokenTTL: 30 * time.Second, TokenMaxTTL: 60 * time.Second,
		RuntimeTTL: 5 * time.Minute, RuntimeMaxTTL: 10 * time.Minute,
	})
	l := startLoad(t, s.client(t, alice), s.baseURL(), 50, 5)

	// Past the second token's end: two re-logins at least.
	time.Sleep(130 * time.Second)
	l.Stop()

	logins := countLog(s, "logged in to vault")
	tokenRotations := countLog(s, "database credential issued", "reason=token")
	t.Logf("%d logins, %d credentials read under a new token", logins, tokenRotations)
	if logins < 3 || tokenRotations < 2 {
		t.Errorf("got %d logins and %d token rotations, want at least 3 and 2", logins, tokenRotations)
	}
	if strings.Contains(s.logs.String(), "password authentication failed") {
		t.Errorf("the database rejected a credential; a lease died with its token before rotor moved on")
	}
	l.requireNoFailures(t)
	l.checkAckedWritesReadable(t)
}

// TestVaultPaused freezes Vault for 30 seconds under load while the
// database lease stays valid. Requests must keep succeeding on that lease,
// readiness must stay up, renewal attempts must back off rather than
// storm, and renewal must resume when Vault returns.
func TestVaultPaused(t *testing.T) {
	// A 120 s lease is renewed at start and next about 80 s later, so a
	// pause from 65 s to 95 s covers a renewal and ends before expiry.
	s := startStack(t, provision.Options{RuntimeTTL: 2 * time.Minute, RuntimeMaxTTL: 10 * time.Minute})
	l := startLoad(t, s.client(t, alice), s.baseURL(), 50, 5)
	time.Sleep(65 * time.Second)

	renewFailures := `rotor_vault_requests_total{op="lease_renew",outcome="failure"}`
	before := metricValue(t, s, renewFailures)
	pause(t, s.vault)
	t.Logf("vault paused at %s", time.Now().Format("15:04:05.000"))
	time.Sleep(15 * time.Second)
	ready, err := http.Get(s.adminURL() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	ready.Body.Close()
	// Counted while Vault is frozen, because a renewal request that hangs
	// in the pause can complete the moment Vault resumes, before a count
	// taken after unpause.
	renewedBefore := countLog(s, "database lease renewed")
	time.Sleep(15 * time.Second)
	unpause(t, s.vault)
	t.Logf("vault resumed at %s", time.Now().Format("15:04:05.000"))

	if ready.StatusCode != http.StatusOK {
		t.Errorf("/readyz during the pause: got %d, want 200 while the lease is valid", ready.StatusCode)
	}

	// Until the renewal after the pause went through.
	deadline := time.Now().Add(60 * time.Second)
	for countLog(s, "database lease renewed") == renewedBefore && time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
	}
	l.Stop()

	failedRenewals := metricValue(t, s, renewFailures) - before
	t.Logf("failed lease renewals during the pause: %v", failedRenewals)
	for line := range strings.Lines(s.logs.String()) {
		if strings.Contains(line, "renew") || strings.Contains(line, "vault call failed") {
			t.Logf("rotor: %s", strings.TrimSpace(line))
		}
	}
	if failedRenewals > 6 {
		t.Errorf("got %v failed renewals in 30 s, want a handful at most: renewal must back off", failedRenewals)
	}
	if countLog(s, "database lease renewed") == renewedBefore {
		t.Errorf("the lease was not renewed within 60 s of Vault's return")
	}
	l.requireNoFailures(t)
	l.checkAckedWritesReadable(t)
}

// TestPostgresRestart restarts the database under load. Requests during the
// restart may fail, but rotor must serve again without a restart of its
// own, and every write it acknowledged must survive.
func TestPostgresRestart(t *testing.T) {
	s := startStackWith(t, provision.Options{}, testenv.FixedHostPort(t, "5432/tcp"))
	client := s.client(t, alice)
	l := startLoad(t, client, s.baseURL(), 50, 5)
	time.Sleep(3 * time.Second)

	timeout := 10 * time.Second
	if err := s.pg.Container.Stop(context.Background(), &timeout); err != nil {
		t.Fatalf("stop postgres: %v", err)
	}
	if err := s.pg.Container.Start(context.Background()); err != nil {
		t.Fatalf("start postgres: %v", err)
	}
	restarted := time.Now()

	deadline := time.Now().Add(60 * time.Second)
	for {
		status, _, _ := do(t, client, "POST", s.baseURL()+"/v1/notes", "application/json", []byte(`{"title":"probe","body":""}`))
		if status == http.StatusCreated {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotor did not serve writes within 60s of the database's restart")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("serving writes %v after the database came back", time.Since(restarted).Round(time.Millisecond))

	time.Sleep(3 * time.Second)
	l.Stop()
	t.Logf("%d requests, %d failed during the restart", l.requests.Load(), len(l.Failures()))
	for _, f := range l.Failures() {
		if !strings.Contains(f, "status 503") {
			t.Errorf("a failure other than 503 Service Unavailable: %s", f)
		}
	}
	l.checkAckedWritesReadable(t)
}
