package secrets

import (
	"net/http"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	rotations *prometheus.CounterVec
	logins    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, m *Manager) *metrics {
	mt := &metrics{
		rotations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rotor_credential_rotations_total",
			Help: "Database credentials read from Vault, by reason: start, lease (renewal ended), token (new login) or rejected (the database refused the old one).",
		}, []string{"reason"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rotor_vault_logins_total",
			Help: "Vault logins, by outcome.",
		}, []string{"outcome"}),
	}
	if reg == nil {
		return mt
	}

	expiry := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rotor_credential_expiry_seconds",
		Help: "Seconds until the current database lease expires unless renewed; negative once expired.",
	}, func() float64 {
		c := m.holder.Load()
		if c == nil {
			return 0
		}
		return time.Until(c.ExpiresAt).Seconds()
	})
	generation := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rotor_credential_generation",
		Help: "Generation of the current database credential, counted from 1 at start-up.",
	}, func() float64 {
		if c := m.holder.Load(); c != nil {
			return float64(c.Generation)
		}
		return 0
	})
	reg.MustRegister(mt.rotations, mt.logins, expiry, generation)
	return mt
}

func outcome(err error) string {
	if err != nil {
		return "failure"
	}
	return "success"
}

// CountRequests wraps the HTTP transport of cfg, before a client is made
// from it, so that every request to Vault is counted in
// rotor_vault_requests_total by operation and outcome. That includes the
// renewal attempts that vault/api's LifetimeWatcher makes and retries on
// its own, which no other hook reports.
func CountRequests(cfg *vault.Config, reg prometheus.Registerer) {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rotor_vault_requests_total",
		Help: "Requests to Vault, by operation (lease_renew, token_renew, login, creds, revoke, other) and outcome.",
	}, []string{"op", "outcome"})
	reg.MustRegister(requests)

	next := cfg.HttpClient.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	cfg.HttpClient.Transport = roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := next.RoundTrip(req)
		result := "success"
		if err != nil || resp.StatusCode >= 400 {
			result = "failure"
		}
		requests.WithLabelValues(vaultOp(req.URL.Path), result).Inc()
		return resp, err
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

func vaultOp(path string) string {
	switch {
	case strings.HasSuffix(path, "/sys/leases/renew"):
		return "lease_renew"
	case strings.HasSuffix(path, "/auth/token/renew-self"):
		return "token_renew"
	case strings.HasSuffix(path, "/login"):
		return "login"
	case strings.Contains(path, "/creds/"):
		return "creds"
	case strings.Contains(path, "/sys/leases/revoke"):
		return "revoke"
	}
	return "other"
}
