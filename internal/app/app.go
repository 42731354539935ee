// Package app assembles rotor from its parts: the Vault credential manager,
// the Postgres pool, the TLS source and the HTTP handlers. cmd/server runs
// it; the integration tests start it in-process.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"example.com/rotor/internal/db"
	"example.com/rotor/internal/handlers"
	"example.com/rotor/internal/secrets"
	"example.com/rotor/internal/tlsx"
)

// HTTP server timeouts of the API listener. WriteTimeout bounds a whole
// response, so it is longer than any query should take.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 15 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
)

// App is a started rotor: its listeners are open and its first database
// credential is in place. Serve runs it until its context ends.
type App struct {
	cfg Config
	log *slog.Logger

	secrets *secrets.Manager
	pool    *db.Pool
	tls     *tlsx.Source

	// reloader keeps tls current when the certificate files change.
	reloader *tlsx.Reloader

	api, admin     *http.Server
	apiLn, adminLn net.Listener
}

// New logs in to Vault, runs the migrations, opens the pool and both
// listeners. Nothing is served until Serve. If New fails, everything it
// opened is closed again.
func New(ctx context.Context, cfg Config, log *slog.Logger) (_ *App, err error) {
	a := &App{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			a.close()
		}
	}()

	if a.tls, err = tlsx.Load(cfg.TLSDir, cfg.ClientCAFile); err != nil {
		return nil, err
	}
	leaf := a.tls.Leaf()
	log.Info("loaded server certificate", "serial", leaf.SerialNumber.Text(16),
		"subject", leaf.Subject.String(), "not_after", leaf.NotAfter)

	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if a.secrets, err = newSecretsManager(cfg, log, registry); err != nil {
		return nil, err
	}
	if err = a.secrets.Start(ctx); err != nil {
		return nil, err
	}
	if err = a.migrate(ctx); err != nil {
		return nil, err
	}

	a.pool, err = db.NewPool(ctx, db.PoolConfig{
		ConnString:  cfg.DatabaseURL,
		MaxConns:    cfg.DBMaxConns,
		Credentials: a.credentials,
		Warm:        db.WarmNotes,
	})
	if err != nil {
		return nil, err
	}
	registry.MustRegister(&connectionsCollector{pool: a.pool, secrets: a.secrets})

	a.reloader, err = tlsx.NewReloader(a.tls, tlsx.ReloaderConfig{
		Mode:         cfg.TLSWatch,
		PollInterval: cfg.TLSPollInterval,
		Logger:       log.With("component", "tls"),
		Registerer:   registry,
	})
	if err != nil {
		return nil, err
	}

	if err = a.listen(registry); err != nil {
		return nil, err
	}
	return a, nil
}

func newSecretsManager(cfg Config, log *slog.Logger, registry *prometheus.Registry) (*secrets.Manager, error) {
	vc := vault.DefaultConfig()
	vc.Address = cfg.VaultAddr

	// vault/api waits 60 seconds by default. A shorter wait lets renewal
	// back off and try again while Vault does not respond.
	vc.Timeout = 10 * time.Second

	err := vc.ConfigureTLS(&vault.TLSConfig{
		CACert:     cfg.VaultCACert,
		ClientCert: cfg.VaultClientCert,
		ClientKey:  cfg.VaultClientKey,
	})
	if err != nil {
		return nil, fmt.Errorf("configure TLS to vault: %w", err)
	}

	// Wrapped after ConfigureTLS, which needs the plain *http.Transport.
	secrets.CountRequests(vc, registry)
	client, err := vault.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("create vault client for %s: %w", cfg.VaultAddr, err)
	}

	// vault/api picks VAULT_TOKEN up from the process environment; rotor
	// uses only the token its configuration names.
	client.ClearToken()

	var auth vault.AuthMethod
	switch cfg.VaultAuth {
	case "token":
		client.SetToken(cfg.VaultToken)
	case "kubernetes":
		auth = &secrets.KubernetesAuth{
			Role:      cfg.KubernetesRole,
			TokenPath: cfg.KubernetesTokenPath,
			MountPath: cfg.KubernetesMount,
		}
	case "approle":
		roleID := cfg.AppRoleID
		if cfg.AppRoleIDFile != "" {
			raw, err := os.ReadFile(cfg.AppRoleIDFile)
			if err != nil {
				return nil, fmt.Errorf("read ROTOR_APPROLE_ROLE_ID_FILE: %w", err)
			}
			roleID = strings.TrimSpace(string(raw))
		}
		secretID := &approle.SecretID{FromString: cfg.AppRoleSecretID}
		if cfg.AppRoleSecretIDFile != "" {
			secretID = &approle.SecretID{FromFile: cfg.AppRoleSecretIDFile}
		}
		if auth, err = approle.NewAppRoleAuth(roleID, secretID); err != nil {
			return nil, fmt.Errorf("configure approle login: %w", err)
		}
	}

	return secrets.New(secrets.Config{
		Client:     client,
		Auth:       auth,
		Mount:      cfg.DatabaseMount,
		Role:       cfg.DatabaseRole,
		Logger:     log,
		Registerer: registry,
	})
}

// migrate runs the embedded migrations as a short-lived user of the
// migration role, then revokes that user at once.
func (a *App) migrate(ctx context.Context) error {
	if a.cfg.MigrationRole == "" {
		a.log.Info("migrations skipped: no migration role configured")
		return nil
	}
	cred, err := a.secrets.ReadCredential(ctx, a.cfg.MigrationRole)
	if err != nil {
		return fmt.Errorf("read migration credential: %w", err)
	}
	defer func() {
		if err := a.secrets.Revoke(context.WithoutCancel(ctx), cred.LeaseID); err != nil {
			a.log.Error("revoke migration credential", "lease_id", cred.LeaseID, "err", err)
		}
	}()

	connConfig, err := pgx.ParseConfig(a.cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("parse ROTOR_DATABASE_URL: %w", err)
	}
	connConfig.User = cred.Username
	connConfig.Password = cred.Password
	return db.Migrate(ctx, connConfig, a.log)
}

// credentials feeds the pool's BeforeConnect hook: every new connection
// logs in with the credential current at that moment.
func (a *App) credentials(context.Context) (user, password string, err error) {
	c, err := a.secrets.Holder().Current()
	if err != nil {
		return "", "", err
	}
	return c.Username, c.Password, nil
}

// store returns the notes repository. Statements that fail because the
// credential was revoked, or because the server ended sessions, run again
// where that is safe; see db.Retry.
func (a *App) store() *db.Notes {
	return db.NewNotes(a.pool).WithRetry(&db.Retry{
		CredentialRejected: a.secrets.CredentialRejected,
		SessionsEnded:      a.pool.Reset,
		Logger:             a.log.With("component", "db"),
	})
}

// ready reports whether a request could be served now: a credential that
// has not expired, and a database that responds.
func (a *App) ready(ctx context.Context) error {
	if _, err := a.secrets.Holder().Current(); err != nil {
		return err
	}
	if err := a.pool.Ping(ctx); err != nil {
		return fmt.Errorf("database ping failed: %w", err)
	}
	return nil
}

// listen opens both listeners now, so that a port in use fails start-up and
// tests can ask for port 0 and read the address back.
func (a *App) listen(registry *prometheus.Registry) (err error) {
	if a.apiLn, err = net.Listen("tcp", a.cfg.ListenAddr); err != nil {
		return fmt.Errorf("listen on ROTOR_LISTEN_ADDR %s: %w", a.cfg.ListenAddr, err)
	}
	if a.adminLn, err = net.Listen("tcp", a.cfg.AdminAddr); err != nil {
		return fmt.Errorf("listen on ROTOR_ADMIN_ADDR %s: %w", a.cfg.AdminAddr, err)
	}

	errorLog, err := tlsx.NewServerErrorLog(a.log.With("component", "http"), registry)
	if err != nil {
		return err
	}
	a.api = &http.Server{
		Handler: handlers.New(handlers.Config{
			Store:      a.store(),
			Logger:     a.log,
			Registerer: registry,
			// Checked after the TLS layer has verified the certificate.
			AllowedClients: a.cfg.AllowedClients,
		}),
		TLSConfig:         a.tls.ServerConfig(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		// Rejected handshakes, such as a client certificate from an
		// untrusted CA, reach the log only through ErrorLog.
		ErrorLog: errorLog,
	}
	a.admin = &http.Server{
		Handler: handlers.NewAdmin(handlers.AdminConfig{
			Ready:    a.ready,
			Gatherer: registry,
			Logger:   a.log,
		}),
		ReadHeaderTimeout: readHeaderTimeout,
	}
	return nil
}

// APIAddr returns the address the API listens on.
func (a *App) APIAddr() net.Addr { return a.apiLn.Addr() }

// AdminAddr returns the address the admin listener listens on.
func (a *App) AdminAddr() net.Addr { return a.adminLn.Addr() }

// Serve serves both listeners and renews credentials until ctx ends, then
// shuts down in order: stop accepting and drain requests, stop renewal,
// close the pool, revoke the database lease. It returns the first error
// that stopped it; a shutdown asked for by ctx is not an error.
func (a *App) Serve(ctx context.Context) error {
	a.log.Info("serving", "api_addr", a.APIAddr().String(), "admin_addr", a.AdminAddr().String())

	renewCtx, stopRenewal := context.WithCancel(context.WithoutCancel(ctx))
	var renewal sync.WaitGroup
	renewal.Go(func() { a.reloader.Run(renewCtx) })
	renewal.Go(func() { a.secrets.Run(renewCtx, a.pool.Retire) })

	serveErr := make(chan error, 2)
	go func() { serveErr <- a.api.ServeTLS(a.apiLn, "", "") }()
	go func() { serveErr <- a.admin.Serve(a.adminLn) }()

	var err error
	select {
	case <-ctx.Done():
		a.log.Info("shutting down", "cause", context.Cause(ctx))
	case err = <-serveErr:
		a.log.Error("listener failed", "err", err)
	}

	drainCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.ShutdownTimeout)
	defer cancel()
	if shutdownErr := a.api.Shutdown(drainCtx); shutdownErr != nil {
		err = errors.Join(err, fmt.Errorf("drain API requests: %w", shutdownErr))
	}
	if shutdownErr := a.admin.Shutdown(drainCtx); shutdownErr != nil {
		err = errors.Join(err, fmt.Errorf("stop admin listener: %w", shutdownErr))
	}

	stopRenewal()
	renewal.Wait()
	a.close()
	return err
}

// close releases what New opened, in reverse order. The lease is revoked
// last, once no connection uses it.
func (a *App) close() {
	if a.apiLn != nil {
		a.apiLn.Close()
	}
	if a.adminLn != nil {
		a.adminLn.Close()
	}
	if a.pool != nil {
		a.pool.Close()
	}
	if a.secrets != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.secrets.Close(ctx); err != nil {
			a.log.Error("revoke database lease at shutdown", "err", err)
		}
	}
	a.log.Info("stopped")
}
