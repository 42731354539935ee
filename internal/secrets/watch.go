package secrets

import (
	"context"
	"time"

	vault "github.com/hashicorp/vault/api"
)

type watchResult int

const (
	stopped watchResult = iota
	tokenEnded
	leaseEnded
)

// watch renews the token and the current database lease until either
// watcher stops or ctx ends, and reports which one it was. A watcher stops
// when its lease reaches its max TTL (DoneCh receives nil), when renewal
// failed past the lease's end (DoneCh receives the error), or when the lease
// cannot be renewed; each case means a new lease is needed.
func (m *Manager) watch(ctx context.Context) watchResult {
	cred := m.holder.Load()
	lease, err := m.cfg.Client.NewLifetimeWatcher(&vault.LifetimeWatcherInput{
		Secret: &vault.Secret{
			LeaseID:       cred.LeaseID,
			LeaseDuration: int(time.Until(cred.ExpiresAt).Seconds()),
			Renewable:     true,
		},
		RenewBehavior: vault.RenewBehaviorIgnoreErrors,
	})
	if err != nil {
		m.log.Error("start database lease renewal", "lease_id", cred.LeaseID, "err", err)
		return leaseEnded
	}
	go lease.Start()
	defer lease.Stop()

	var tokenDone <-chan error
	if m.token != nil {
		token, err := m.cfg.Client.NewLifetimeWatcher(&vault.LifetimeWatcherInput{
			Secret:        m.token,
			RenewBehavior: vault.RenewBehaviorIgnoreErrors,
		})
		if err != nil {
			m.log.Error("start vault token renewal", "err", err)
			return tokenEnded
		}
		go token.Start()
		defer token.Stop()
		tokenDone = token.DoneCh()
	}

	for {
		select {
		case <-ctx.Done():
			return stopped

		case renewal := <-lease.RenewCh():
			m.renewed(cred, renewal)

		case err := <-lease.DoneCh():
			m.log.Info("database lease renewal ended", "lease_id", cred.LeaseID, "err", err)
			return leaseEnded

		case err := <-tokenDone:
			m.log.Info("vault token renewal ended", "err", err)
			return tokenEnded
		}
	}
}

// renewed publishes a copy of cred that expires when the renewal says.
func (m *Manager) renewed(cred *Credential, renewal *vault.RenewOutput) {
	next := *cred
	next.ExpiresAt = renewal.RenewedAt.Add(time.Duration(renewal.Secret.LeaseDuration) * time.Second)
	m.holder.Store(&next)
	m.log.Debug("database lease renewed", "lease_id", cred.LeaseID, "expires_at", next.ExpiresAt)
}
