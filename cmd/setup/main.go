// Command setup prepares a development stack for rotor and exits: it creates
// rotor's Postgres roles, configures Vault, issues a server certificate and
// a client certificate in cert-manager's Secret layout, and writes rotor's
// AppRole credentials. docker-compose.yml runs it once before rotor starts.
// Every step is idempotent, so running it again is safe.
//
// It uses Vault's root token and the Postgres superuser, because it acts
// for the operator, never for rotor.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/jackc/pgx/v5"

	"example.com/rotor/internal/db"
	"example.com/rotor/internal/provision"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "setup:", err)
		os.Exit(1)
	}
}

// config is read from these environment variables:
//
//	SETUP_POSTGRES_URL        superuser URL of Postgres, from the host running setup
//	SETUP_VAULT_DB_URL        URL Vault uses to reach Postgres, with {{username}} and {{password}}
//	SETUP_VAULT_DB_PASSWORD   password to give Vault's own Postgres user
//	VAULT_ADDR, VAULT_TOKEN   Vault and a token that may configure it
//	SETUP_CERT_DIR            where server/ and client/ certificate directories go
//	SETUP_APPROLE_DIR         where role_id and secret_id go
//	SETUP_CERT_OWNER          uid that gets the server key (rotor's user in its image)
//	SETUP_SERVER_NAMES        DNS names of the server certificate, comma-separated
//	SETUP_CLIENT_ID           URI SAN of the client certificate
type config struct {
	postgresURL, vaultDBURL, vaultDBPassword string
	certDir, appRoleDir                      string
	certOwner                                int
	serverNames                              []string
	clientID                                 string
}

func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	log := slog.New(slog.NewTextHandler(stdout, nil))
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}

	if err := bootstrapPostgres(ctx, log, cfg); err != nil {
		return err
	}

	client, err := vault.NewClient(vault.DefaultConfig())
	if err != nil {
		return fmt.Errorf("create vault client: %w", err)
	}
	err = retry(ctx, log, "configure vault", func() error {
		return provision.Configure(ctx, client, provision.Options{
			DatabaseURL:     cfg.vaultDBURL,
			VaultDBUser:     "vault",
			VaultDBPassword: cfg.vaultDBPassword,
			ServerDomains:   cfg.serverNames,
		})
	})
	if err != nil {
		return err
	}
	log.Info("vault configured")

	if err := issueCertificates(ctx, log, client, cfg); err != nil {
		return err
	}
	return writeAppRole(ctx, log, client, cfg)
}

func loadConfig(getenv func(string) string) (config, error) {
	cfg := config{
		postgresURL:     getenv("SETUP_POSTGRES_URL"),
		vaultDBURL:      getenv("SETUP_VAULT_DB_URL"),
		vaultDBPassword: getenv("SETUP_VAULT_DB_PASSWORD"),
		certDir:         getenv("SETUP_CERT_DIR"),
		appRoleDir:      getenv("SETUP_APPROLE_DIR"),
		serverNames:     serverNames(getenv("SETUP_SERVER_NAMES")),
		clientID:        getenv("SETUP_CLIENT_ID"),
	}
	var errs []error
	for name, value := range map[string]string{
		"SETUP_POSTGRES_URL":      cfg.postgresURL,
		"SETUP_VAULT_DB_URL":      cfg.vaultDBURL,
		"SETUP_VAULT_DB_PASSWORD": cfg.vaultDBPassword,
		"SETUP_CERT_DIR":          cfg.certDir,
		"SETUP_APPROLE_DIR":       cfg.appRoleDir,
		"SETUP_CLIENT_ID":         cfg.clientID,
	} {
		if value == "" {
			errs = append(errs, fmt.Errorf("%s is required", name))
		}
	}
	owner, err := strconv.Atoi(getenv("SETUP_CERT_OWNER"))
	if err != nil {
		errs = append(errs, fmt.Errorf("SETUP_CERT_OWNER=%q: want a numeric uid", getenv("SETUP_CERT_OWNER")))
	}
	cfg.certOwner = owner
	return cfg, errors.Join(errs...)
}

// serverNames splits a comma-separated list of DNS names; empty means
// "rotor" and "localhost", the names the compose stack and curl use.
func serverNames(list string) []string {
	var names []string
	for _, name := range strings.Split(list, ",") {
		if name = strings.TrimSpace(name); name != "" {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return []string{"rotor", "localhost"}
	}
	return names
}

func bootstrapPostgres(ctx context.Context, log *slog.Logger, cfg config) error {
	return retry(ctx, log, "bootstrap postgres", func() error {
		conn, err := pgx.Connect(ctx, cfg.postgresURL)
		if err != nil {
			return fmt.Errorf("connect to postgres as superuser: %w", err)
		}
		defer conn.Close(context.WithoutCancel(ctx))
		return db.Bootstrap(ctx, conn, db.BootstrapOptions{VaultUser: "vault", VaultPassword: cfg.vaultDBPassword})
	})
}

func issueCertificates(ctx context.Context, log *slog.Logger, client *vault.Client, cfg config) error {
	server, err := provision.IssueCertificate(ctx, client, provision.ServerCertRole, provision.CertificateRequest{
		CommonName: cfg.serverNames[0],
		DNSNames:   cfg.serverNames,
		IPs:        []string{"127.0.0.1"},
		TTL:        30 * 24 * time.Hour,
	})
	if err != nil {
		return err
	}
	serverDir := filepath.Join(cfg.certDir, "server")
	if err := server.WriteSecretDir(serverDir); err != nil {
		return err
	}
	// rotor runs as an unprivileged user that must read its own key.
	for _, name := range []string{"tls.crt", "tls.key", "ca.crt"} {
		if err := os.Chown(filepath.Join(serverDir, name), cfg.certOwner, cfg.certOwner); err != nil {
			return fmt.Errorf("hand %s to uid %d: %w", name, cfg.certOwner, err)
		}
	}
	log.Info("issued server certificate", "dir", serverDir, "serial", server.Serial)

	clientCert, err := provision.IssueCertificate(ctx, client, provision.ClientCertRole, provision.CertificateRequest{
		CommonName: "demo-client",
		URIs:       []string{cfg.clientID},
		TTL:        30 * 24 * time.Hour,
	})
	if err != nil {
		return err
	}
	clientDir := filepath.Join(cfg.certDir, "client")
	if err := clientCert.WriteSecretDir(clientDir); err != nil {
		return err
	}
	// The client key is for the person who tries the stack from the host.
	// The container cannot know that user's uid, so this demo key stays
	// readable by everyone.
	if err := os.Chmod(filepath.Join(clientDir, "tls.key"), 0o644); err != nil {
		return fmt.Errorf("make the demo client key readable: %w", err)
	}
	log.Info("issued client certificate", "dir", clientDir, "serial", clientCert.Serial, "identity", cfg.clientID)
	return nil
}

func writeAppRole(ctx context.Context, log *slog.Logger, client *vault.Client, cfg config) error {
	roleID, secretID, err := provision.AppRoleCredentials(ctx, client)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.appRoleDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", cfg.appRoleDir, err)
	}
	files := map[string]string{"role_id": roleID, "secret_id": secretID}
	for name, value := range files {
		path := filepath.Join(cfg.appRoleDir, name)
		if err := os.WriteFile(path, []byte(value), 0o600); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		if err := os.Chown(path, cfg.certOwner, cfg.certOwner); err != nil {
			return fmt.Errorf("hand %s to uid %d: %w", path, cfg.certOwner, err)
		}
	}
	log.Info("wrote approle credentials", "dir", cfg.appRoleDir)
	return nil
}

// retry runs op until it succeeds, for up to two minutes, because Postgres
// and Vault may still be starting when setup runs.
func retry(ctx context.Context, log *slog.Logger, what string, op func() error) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil {
			return nil
		}
		log.Warn("not ready yet; retrying", "step", what, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: gave up after %d attempts: %w", what, attempt, err)
		case <-time.After(2 * time.Second):
		}
	}
}
