// Command certrenew takes the place of cert-manager and the kubelet in the
// development stack. At start and then every CERTRENEW_INTERVAL it issues a
// new server certificate and a new client certificate from Vault's PKI. It
// publishes each in the layout of a mounted Secret by swapping the ..data
// symlink (see package secretvolume). rotor and cmd/client reload them
// without a restart. docker-compose.yml runs it after setup; it runs until
// SIGINT or SIGTERM.
//
// A directory that setup wrote as plain files becomes the kubelet layout at
// the first renewal. Like setup, it uses a Vault token that may issue from
// both certificate roles, because it acts for the operator, never for rotor.
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

	"example.com/rotor/internal/provision"
	"example.com/rotor/internal/secretvolume"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "certrenew:", err)
		os.Exit(1)
	}
}

// config is read from these environment variables:
//
//	VAULT_ADDR, VAULT_TOKEN  Vault and a token that may issue certificates
//	CERTRENEW_DIR            where the server/ and client/ directories are
//	CERTRENEW_INTERVAL       time between renewals (default 60s)
//	CERTRENEW_TTL            lifetime of each certificate (default 24h)
//	CERTRENEW_OWNER          uid and gid that get the server files (rotor's user in its image)
//	CERTRENEW_SERVER_NAMES   DNS names of the server certificate, comma-separated (default rotor,localhost)
//	CERTRENEW_CLIENT_ID      URI SAN of the client certificate
//	CERTRENEW_ONCE           "true" renews once and exits
type config struct {
	certDir     string
	interval    time.Duration
	ttl         time.Duration
	owner       int
	serverNames []string
	clientID    string
	once        bool
}

func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	log := slog.New(slog.NewTextHandler(stdout, nil))
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}

	// vault.DefaultConfig reads VAULT_ADDR and vault.NewClient reads
	// VAULT_TOKEN from the process environment, as in setup.
	client, err := vault.NewClient(vault.DefaultConfig())
	if err != nil {
		return fmt.Errorf("create vault client: %w", err)
	}
	log.Info("starting", "dir", cfg.certDir, "interval", cfg.interval, "ttl", cfg.ttl,
		"server_names", cfg.serverNames, "client_id", cfg.clientID, "owner", cfg.owner)

	ticker := time.NewTicker(cfg.interval)
	defer ticker.Stop()
	for {
		// A failed renewal is logged and tried again at the next tick,
		// while the certificates of the previous renewal stay in place.
		if err := renew(ctx, log, client, cfg); err != nil {
			if cfg.once {
				return err
			}
			log.Error("renewing certificates failed; trying again at the next interval", "err", err, "retry_in", cfg.interval)
		}
		if cfg.once {
			return nil
		}

		select {
		case <-ctx.Done():
			log.Info("stopped", "cause", context.Cause(ctx))
			return nil
		case <-ticker.C:
		}
	}
}

func loadConfig(getenv func(string) string) (config, error) {
	cfg := config{
		certDir:     getenv("CERTRENEW_DIR"),
		serverNames: []string{"rotor", "localhost"},
		clientID:    getenv("CERTRENEW_CLIENT_ID"),
		once:        getenv("CERTRENEW_ONCE") == "true",
	}
	var errs []error
	if cfg.certDir == "" {
		errs = append(errs, errors.New("CERTRENEW_DIR is required"))
	}
	if cfg.clientID == "" {
		errs = append(errs, errors.New("CERTRENEW_CLIENT_ID is required"))
	}
	if names := getenv("CERTRENEW_SERVER_NAMES"); names != "" {
		cfg.serverNames = strings.Split(names, ",")
	}

	var err error
	if cfg.interval, err = durationFrom(getenv, "CERTRENEW_INTERVAL", time.Minute); err != nil {
		errs = append(errs, err)
	}
	if cfg.ttl, err = durationFrom(getenv, "CERTRENEW_TTL", 24*time.Hour); err != nil {
		errs = append(errs, err)
	}
	owner := getenv("CERTRENEW_OWNER")
	if cfg.owner, err = strconv.Atoi(owner); err != nil || cfg.owner < 0 {
		errs = append(errs, fmt.Errorf("CERTRENEW_OWNER=%q: want a numeric uid such as 10001", owner))
	}
	return cfg, errors.Join(errs...)
}

// durationFrom parses the environment variable name, or returns def when it
// is empty.
func durationFrom(getenv func(string) string, name string, def time.Duration) (time.Duration, error) {
	value := getenv(name)
	if value == "" {
		return def, nil
	}
	d, err := time.ParseDuration(value)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive duration such as 60s", name, value)
	}
	return d, nil
}

// renew issues and publishes the server certificate, then the client
// certificate.
func renew(ctx context.Context, log *slog.Logger, client *vault.Client, cfg config) error {
	server, err := provision.IssueCertificate(ctx, client, provision.ServerCertRole, provision.CertificateRequest{
		CommonName: cfg.serverNames[0],
		DNSNames:   cfg.serverNames,
		IPs:        []string{"127.0.0.1"},
		TTL:        cfg.ttl,
	})
	if err != nil {
		return fmt.Errorf("issue server certificate: %w", err)
	}
	serverDir := filepath.Join(cfg.certDir, "server")
	// rotor runs as an unprivileged user that must read its own key.
	err = server.WriteSecretVolume(serverDir, secretvolume.Options{
		Mode:  0o600,
		Owner: &secretvolume.Owner{UID: cfg.owner, GID: cfg.owner},
	})
	if err != nil {
		return err
	}
	log.Info("renewed server certificate", "dir", serverDir, "serial", server.Serial)

	clientCert, err := provision.IssueCertificate(ctx, client, provision.ClientCertRole, provision.CertificateRequest{
		CommonName: "demo-client",
		URIs:       []string{cfg.clientID},
		TTL:        cfg.ttl,
	})
	if err != nil {
		return fmt.Errorf("issue client certificate: %w", err)
	}
	clientDir := filepath.Join(cfg.certDir, "client")
	// The client key is for the user who tries the stack from the host. The
	// container cannot know that user's uid, so the key stays readable by
	// all. This is a demo key.
	if err := clientCert.WriteSecretVolume(clientDir, secretvolume.Options{Mode: 0o644}); err != nil {
		return err
	}
	log.Info("renewed client certificate", "dir", clientDir, "serial", clientCert.Serial, "identity", cfg.clientID)
	return nil
}
