package secrets

import (
	"context"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// watchResult is the reason watch returned, and so the reason Run rotates.
type watchResult int

const (
	stopped watchResult = iota
	tokenEnded
	leaseEnded
	credentialRejected
)

func (r watchResult) String() string {
	switch r {
	case tokenEnded:
		return "token"
	case leaseEnded:
		return "lease"
	case credentialRejected:
		return "rejected"
	}
	return "stopped"
}

// watch renews the token and the current database lease until either
// watcher stops, a caller reports the credential rejected, or ctx ends.
//
// A LifetimeWatcher stops when its lease reaches its max TTL (DoneCh
// receives nil), when renewal failed until the lease's end (DoneCh receives
// the error), or when the lease cannot be renewed. Each case means the same
// thing: a new lease is needed, so watch does not look at the value.
//
// A token's expiry revokes every database lease issued under it, whatever
// the lease's own TTL, so when the token ends Run logs in again and reads
// the database credential anew under the new token.
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
			if m.cfg.Auth == nil {
				m.log.Error("the vault token given at start-up cannot be renewed further and rotor cannot log in again: configure AppRole or Kubernetes auth")
				m.token = nil
			}
			return tokenEnded

		case <-m.refresh:
			m.log.Warn("database rejected the current credential", "lease_id", cred.LeaseID, "username", cred.Username)
			return credentialRejected
		}
	}
}

// renewed publishes a copy of cred with the expiry that the renewal reports.
func (m *Manager) renewed(cred *Credential, renewal *vault.RenewOutput) {
	next := *cred
	next.ExpiresAt = renewal.RenewedAt.Add(time.Duration(renewal.Secret.LeaseDuration) * time.Second)
	m.holder.Store(&next)
	m.log.Debug("database lease renewed", "lease_id", cred.LeaseID, "expires_at", next.ExpiresAt)
}
