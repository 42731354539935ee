package secrets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// Config configures a Manager.
type Config struct {
	// Client is the Vault client. With a nil Auth it must already carry a
	// token (vault/api reads VAULT_TOKEN).
	Client *vault.Client

	// Auth logs in, for example an approle.AppRoleAuth. Nil means the token
	// already on Client is used as it is and cannot be replaced once it ends.
	Auth vault.AuthMethod

	// Mount is the path of the database secrets engine; default "database".
	Mount string

	// Role is the database role that runtime credentials are read from.
	Role string

	// Logger receives lifecycle and failure lines; nil discards them.
	Logger *slog.Logger

	// MinBackoff and MaxBackoff bound the delay between failed Vault calls;
	// defaults 1s and 30s. Each delay is drawn at random from its full range,
	// so replicas do not retry in step.
	MinBackoff time.Duration
	MaxBackoff time.Duration
}

// Manager logs in to Vault and keeps a valid database credential in its
// Holder. Start it once with Start, then Run in a goroutine; Close revokes
// the credential it holds.
type Manager struct {
	cfg    Config
	log    *slog.Logger
	holder Holder

	// token is the login secret; nil for a token given up front. Only the
	// goroutine that runs Run and Start touch it.
	token *vault.Secret
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
	return &Manager{cfg: cfg, log: log.With("component", "secrets")}, nil
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
	return m.rotate(ctx)
}

// Run renews the token and the database lease until ctx ends, replacing each
// when its renewal is over. It returns when ctx is done. Call it from one
// goroutine, after Start succeeded.
func (m *Manager) Run(ctx context.Context) {
	for ctx.Err() == nil {
		ended := m.watch(ctx)

		switch ended {
		case tokenEnded:
			m.retry(ctx, "log in to vault", m.login)
			m.retry(ctx, "read database credential", m.rotate)
		case leaseEnded:
			m.retry(ctx, "read database credential", m.rotate)
		}
	}
}

// Close revokes the current database lease. Call it after Run has returned
// and the pool is closed.
func (m *Manager) Close(ctx context.Context) error {
	c := m.holder.Load()
	if c == nil || c.LeaseID == "" {
		return nil
	}
	if err := m.Revoke(ctx, c.LeaseID); err != nil {
		return err
	}
	m.log.Info("revoked database lease", "lease_id", c.LeaseID, "generation", c.Generation)
	return nil
}

// ReadCredential reads one credential from role without publishing it, for
// short jobs such as migrations. The caller revokes it with Revoke.
func (m *Manager) ReadCredential(ctx context.Context, role string) (*Credential, error) {
	return readCredential(ctx, m.cfg.Client, m.cfg.Mount, role)
}

// Revoke revokes a lease at once. It names the lease in the request path,
// where Vault policies can limit it to rotor's own roles; the request-body
// form that vault/api's Sys().Revoke sends would need the right to revoke
// any lease.
func (m *Manager) Revoke(ctx context.Context, leaseID string) error {
	if _, err := m.cfg.Client.Logical().WriteWithContext(ctx, "sys/leases/revoke/"+leaseID, nil); err != nil {
		return fmt.Errorf("revoke lease %s: %w", leaseID, err)
	}
	return nil
}

func (m *Manager) login(ctx context.Context) error {
	if m.cfg.Auth == nil {
		return nil
	}
	secret, err := m.cfg.Client.Auth().Login(ctx, m.cfg.Auth)
	if err != nil {
		return fmt.Errorf("log in to vault: %w", err)
	}
	if secret == nil || secret.Auth == nil {
		return errors.New("log in to vault: the response holds no token")
	}
	m.token = secret
	m.log.Info("logged in to vault",
		"token_ttl", time.Duration(secret.Auth.LeaseDuration)*time.Second,
		"renewable", secret.Auth.Renewable)
	return nil
}

func (m *Manager) rotate(ctx context.Context) error {
	c, err := readCredential(ctx, m.cfg.Client, m.cfg.Mount, m.cfg.Role)
	if err != nil {
		return err
	}
	if prev := m.holder.Load(); prev != nil {
		c.Generation = prev.Generation + 1
	} else {
		c.Generation = 1
	}

	// NOTE: the previous lease is left to expire on its own, so pooled
	// connections that still use it keep working until then.
	m.holder.Store(c)
	m.log.Info("database credential issued",
		"lease_id", c.LeaseID, "username", c.Username,
		"generation", c.Generation, "expires_at", c.ExpiresAt)
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
		return nil, fmt.Errorf("read %s: the response holds no username or password", path)
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

// jitter returns a duration drawn uniformly from [d/2, d).
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}
