package secrets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Manager.
type Config struct {
	// Client is the Vault client. With a nil Auth it must already carry a
	// token.
	Client *vault.Client

	// Auth logs in, for example an approle.AppRoleAuth or a
	// KubernetesAuth. Nil means the token already on Client is used as it
	// is and cannot be replaced once it ends.
	Auth vault.AuthMethod

	// Mount is the path of the database secrets engine; default "database".
	Mount string

	// Role is the database role that runtime credentials are read from.
	Role string

	// Logger receives lifecycle and failure lines; nil discards them.
	Logger *slog.Logger

	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer

	// MinBackoff and MaxBackoff bound the delay between failed Vault calls;
	// defaults 1s and 30s. Each delay is drawn at random from the upper
	// half of its range, so replicas do not retry in step.
	MinBackoff time.Duration
	MaxBackoff time.Duration
}

// Bounds of the wait for a replaced credential's connections to close.
const (
	minRetireWait = 2 * time.Second
	maxRetireWait = 30 * time.Second
)

// RetireFunc returns once no database connection is logged in as user, or
// with an error when ctx ends first.
type RetireFunc func(ctx context.Context, user string) error

// Manager logs in to Vault and keeps a valid database credential in its
// Holder. Call Start once, then Run in one goroutine; after Run returns,
// Close revokes the credentials the Manager still holds.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	holder  Holder
	metrics *metrics

	// token is the login secret, or a lookup of a token given up front; nil
	// when the token cannot be renewed. Only Start and the goroutine that
	// runs Run use it.
	token *vault.Secret

	// refresh requests a new credential from Run at once. Its buffer of one
	// merges the requests of every caller that saw the same failure.
	refresh chan struct{}

	// retiring tracks the goroutines that retire and revoke replaced
	// credentials.
	retiring sync.WaitGroup

	// mu guards live, the credentials issued and not yet revoked, by
	// database user.
	mu   sync.Mutex
	live map[string]*Credential
}

// New checks cfg and returns a Manager that has not contacted Vault yet.
func New(cfg Config) (*Manager, error) {
	if cfg.Client == nil {
		return nil, errors.New("secrets: a vault client is required")
	}
	if cfg.Role == "" {
		return nil, errors.New("secrets: a database role is required")
	}
	if cfg.Mount == "" {
		cfg.Mount = "database"
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(30*time.Second, cfg.MinBackoff)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	m := &Manager{
		cfg:     cfg,
		log:     log.With("component", "secrets"),
		refresh: make(chan struct{}, 1),
		live:    make(map[string]*Credential),
	}
	m.metrics = newMetrics(cfg.Registerer, m)
	return m, nil
}

// Holder returns the holder that publishes the current credential.
func (m *Manager) Holder() *Holder {
	return &m.holder
}

// Start logs in and reads the first database credential, failing at once
// rather than retrying, so a misconfiguration stops start-up with its cause.
func (m *Manager) Start(ctx context.Context) error {
	if err := m.login(ctx); err != nil {
		return err
	}
	return m.rotate(ctx, nil, "start")
}

// Run renews the token and the database lease until ctx ends, replacing each
// when its renewal is over or when CredentialRejected reports the database
// credential dead. After each replacement it calls retire with the old
// user, then revokes the old lease, so at most two credentials live at
// once. Run returns when ctx is done and its retirements have finished.
func (m *Manager) Run(ctx context.Context, retire RetireFunc) {
	defer m.retiring.Wait()

	for ctx.Err() == nil {
		reason := m.watch(ctx)
		if reason == stopped {
			return
		}

		if reason == tokenEnded {
			m.retry(ctx, "log in to vault", m.login)
		}
		m.retry(ctx, "read database credential", func(ctx context.Context) error {
			return m.rotate(ctx, retire, reason.String())
		})
	}
}

// CredentialRejected reports that the database refused user, for example
// because an operator revoked its lease. If user is the current user, Run
// reads a new credential at once; however many callers report the same
// user, Vault is asked once. It returns when a credential for another user
// is current, or with ctx's error.
func (m *Manager) CredentialRejected(ctx context.Context, user string) error {
	for m.holder.IsCurrent(user) {
		changed := m.holder.Changed()
		if !m.holder.IsCurrent(user) {
			break
		}
		select {
		case m.refresh <- struct{}{}:
		default:
		}

		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("wait for a database credential to replace %s: %w", user, ctx.Err())
		}
	}
	return nil
}

// Close revokes every lease the Manager still holds. Call it after Run has
// returned and the pool is closed.
func (m *Manager) Close(ctx context.Context) error {
	m.retiring.Wait()

	m.mu.Lock()
	live := make([]*Credential, 0, len(m.live))
	for _, c := range m.live {
		live = append(live, c)
	}
	m.mu.Unlock()

	var errs []error
	for _, c := range live {
		if err := m.revoke(ctx, c, "shutdown"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ReadCredential reads one credential from role without publishing it, for
// short jobs such as migrations. The caller revokes it with Revoke.
func (m *Manager) ReadCredential(ctx context.Context, role string) (*Credential, error) {
	return readCredential(ctx, m.cfg.Client, m.cfg.Mount, role)
}

// Revoke revokes a lease at once. It names the lease in the request path,
// where Vault policies can limit it to rotor's own roles. The request-body
// form that vault/api's Sys().Revoke sends would need the right to revoke
// any lease.
func (m *Manager) Revoke(ctx context.Context, leaseID string) error {
	if _, err := m.cfg.Client.Logical().WriteWithContext(ctx, "sys/leases/revoke/"+leaseID, nil); err != nil {
		return fmt.Errorf("revoke lease %s: %w", leaseID, err)
	}
	return nil
}

// GenerationOf returns the generation of the live credential for user, or
// 0 when none is live.
func (m *Manager) GenerationOf(user string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.live[user]; ok {
		return c.Generation
	}
	return 0
}

func (m *Manager) login(ctx context.Context) error {
	if m.cfg.Auth == nil {
		return m.lookupToken(ctx)
	}

	secret, err := m.cfg.Client.Auth().Login(ctx, m.cfg.Auth)
	m.metrics.logins.WithLabelValues(outcome(err)).Inc()
	if err != nil {
		return fmt.Errorf("log in to vault: %w", err)
	}
	if secret == nil || secret.Auth == nil {
		return errors.New("log in to vault: the response contains no token")
	}
	m.token = secret
	m.log.Info("logged in to vault",
		"token_ttl", time.Duration(secret.Auth.LeaseDuration)*time.Second,
		"renewable", secret.Auth.Renewable)
	return nil
}

// lookupToken describes a token given up front as a login secret, so that
// Run renews it when it can be renewed.
func (m *Manager) lookupToken(ctx context.Context) error {
	self, err := m.cfg.Client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return fmt.Errorf("look up vault token: %w", err)
	}
	ttl, _ := self.TokenTTL()
	renewable, _ := self.TokenIsRenewable()
	if ttl <= 0 {
		m.token = nil
		return nil
	}
	m.token = &vault.Secret{Auth: &vault.SecretAuth{
		ClientToken:   m.cfg.Client.Token(),
		LeaseDuration: int(ttl.Seconds()),
		Renewable:     renewable,
	}}
	return nil
}

// rotate reads a new credential, publishes it, and hands the one it
// replaces to a goroutine that retires and revokes it.
func (m *Manager) rotate(ctx context.Context, retire RetireFunc, reason string) error {
	c, err := readCredential(ctx, m.cfg.Client, m.cfg.Mount, m.cfg.Role)
	if err != nil {
		return err
	}

	prev := m.holder.Load()
	c.Generation = 1
	if prev != nil {
		c.Generation = prev.Generation + 1
	}

	m.mu.Lock()
	m.live[c.Username] = c
	m.mu.Unlock()
	m.holder.Store(c)

	// A refresh requested for the credential just replaced is satisfied now,
	// so it is dropped.
	select {
	case <-m.refresh:
	default:
	}

	m.metrics.rotations.WithLabelValues(reason).Inc()
	m.log.Info("database credential issued", "reason", reason,
		"lease_id", c.LeaseID, "username", c.Username,
		"generation", c.Generation, "expires_at", c.ExpiresAt)

	if prev != nil && retire != nil {
		m.retiring.Go(func() { m.retire(prev, retire) })
	}
	return nil
}

// retire waits until no connection uses old, then revokes its lease. It
// waits until the lease expires, when Vault ends its sessions anyway, but
// at least minRetireWait, so that requests in flight can finish on a lease
// rotated late, and at most maxRetireWait, so that at most two credentials
// stay alive.
func (m *Manager) retire(old *Credential, retire RetireFunc) {
	wait := min(max(time.Until(old.ExpiresAt), minRetireWait), maxRetireWait)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	start := time.Now()
	if err := retire(ctx, old.Username); err != nil {
		m.log.Warn("revoking a credential that still has connections", "lease_id", old.LeaseID, "err", err)
	} else {
		m.log.Info("retired database connections", "lease_id", old.LeaseID,
			"generation", old.Generation, "took", time.Since(start))
	}

	revokeCtx, cancelRevoke := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelRevoke()
	m.retry(revokeCtx, "revoke replaced database lease", func(ctx context.Context) error {
		return m.revoke(ctx, old, "replaced")
	})
}

func (m *Manager) revoke(ctx context.Context, c *Credential, reason string) error {
	if err := m.Revoke(ctx, c.LeaseID); err != nil {
		return err
	}

	m.mu.Lock()
	delete(m.live, c.Username)
	m.mu.Unlock()
	m.log.Info("database lease revoked", "reason", reason, "lease_id", c.LeaseID, "generation", c.Generation)
	return nil
}

func readCredential(ctx context.Context, client *vault.Client, mount, role string) (*Credential, error) {
	path := mount + "/creds/" + role
	issued := time.Now()

	secret, err := client.Logical().ReadWithContext(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if secret == nil || secret.Data == nil {
		return nil, fmt.Errorf("read %s: vault returned no data: check that the role exists", path)
	}

	user, _ := secret.Data["username"].(string)
	password, _ := secret.Data["password"].(string)
	if user == "" || password == "" {
		return nil, fmt.Errorf("read %s: the response contains no username or password", path)
	}
	return &Credential{
		Username:  user,
		Password:  password,
		LeaseID:   secret.LeaseID,
		ExpiresAt: issued.Add(time.Duration(secret.LeaseDuration) * time.Second),
	}, nil
}

// retry calls op until it succeeds or ctx ends, sleeping a jittered,
// exponentially growing delay after each failure.
func (m *Manager) retry(ctx context.Context, what string, op func(context.Context) error) {
	delay := m.cfg.MinBackoff
	for attempt := 1; ; attempt++ {
		err := op(ctx)
		if err == nil || ctx.Err() != nil {
			return
		}

		wait := jitter(delay)
		m.log.Error("vault call failed; retrying", "op", what, "attempt", attempt, "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		delay = min(delay*2, m.cfg.MaxBackoff)
	}
}

// jitter returns a duration drawn uniformly from [d/2, d].
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}
