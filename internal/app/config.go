package app

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"example.com/rotor/internal/handlers"
	"example.com/rotor/internal/tlsx"
)

// Config is every setting rotor reads at start-up. LoadConfig fills it from
// environment variables; each field's variable, default and help are listed
// in settings below and printed by `server -help`.
type Config struct {
	ListenAddr          string
	AdminAddr           string
	TLSDir              string
	ClientCAFile        string
	DatabaseURL         string
	DBMaxConns          int32
	VaultAddr           string
	VaultAuth           string
	VaultToken          string
	AppRoleID           string
	AppRoleIDFile       string
	AppRoleSecretID     string
	AppRoleSecretIDFile string
	KubernetesRole      string
	KubernetesTokenPath string
	KubernetesMount     string
	DatabaseMount       string
	DatabaseRole        string
	MigrationRole       string
	ShutdownTimeout     time.Duration
	LogLevel            slog.Level
	LogFormat           string

	// VaultCACert, VaultClientCert and VaultClientKey configure TLS to
	// Vault; they keep vault/api's standard variable names.
	VaultCACert     string
	VaultClientCert string
	VaultClientKey  string

	// TLSWatch and TLSPollInterval set how changed certificate files are
	// noticed. AllowedClients restricts which clients may call the API.
	TLSWatch        tlsx.WatchMode
	TLSPollInterval time.Duration
	AllowedClients  handlers.AllowList
}

// setting is one environment variable: its default, its help line and how it
// is stored in Config.
type setting struct {
	name  string
	def   string
	help  string
	apply func(c *Config, value string) error
}

var settings = []setting{
	{"ROTOR_LISTEN_ADDR", ":8443", "address of the HTTPS API (mutual TLS)", str(func(c *Config) *string { return &c.ListenAddr })},
	{"ROTOR_ADMIN_ADDR", ":9090", "address of the plain-HTTP admin listener: /healthz, /readyz, /metrics", str(func(c *Config) *string { return &c.AdminAddr })},
	{"ROTOR_TLS_DIR", "/etc/rotor/tls", "directory with tls.crt (leaf and intermediates), tls.key and ca.crt, as cert-manager writes them", str(func(c *Config) *string { return &c.TLSDir })},
	{"ROTOR_CLIENT_CA_FILE", "", "PEM bundle of CAs trusted to sign client certificates; empty means ROTOR_TLS_DIR/ca.crt", str(func(c *Config) *string { return &c.ClientCAFile })},
	{"ROTOR_TLS_WATCH", "fsnotify", "how changed certificate files are noticed: fsnotify (watch their directories, and poll as a fallback) or poll", tlsWatch},
	{"ROTOR_TLS_POLL_INTERVAL", "10s", "how often the certificate files are read again; the only trigger when ROTOR_TLS_WATCH=poll", tlsPollInterval},
	{"ROTOR_ALLOWED_CLIENTS", "", "comma-separated client identities that may call the API; an entry ending in * matches every identity with that prefix; empty allows any client with a verified certificate", allowedClients},
	{"ROTOR_DATABASE_URL", "postgres://localhost:5432/rotor?sslmode=disable", "Postgres URL without user or password; Vault supplies both", databaseURL},
	{"ROTOR_DB_MAX_CONNS", "10", "maximum number of pooled database connections", maxConns},
	{"VAULT_ADDR", "https://127.0.0.1:8200", "Vault address", str(func(c *Config) *string { return &c.VaultAddr })},
	{"ROTOR_VAULT_AUTH", "token", "how rotor logs in to Vault: token (VAULT_TOKEN), approle or kubernetes", vaultAuth},
	{"ROTOR_VAULT_K8S_ROLE", "rotor", "Vault role of the Kubernetes auth method", str(func(c *Config) *string { return &c.KubernetesRole })},
	{"ROTOR_VAULT_K8S_TOKEN_PATH", "/var/run/secrets/kubernetes.io/serviceaccount/token", "service account token file, read at each Kubernetes login", str(func(c *Config) *string { return &c.KubernetesTokenPath })},
	{"ROTOR_VAULT_K8S_MOUNT", "kubernetes", "path of Vault's Kubernetes auth method", str(func(c *Config) *string { return &c.KubernetesMount })},
	{"VAULT_TOKEN", "", "Vault token when ROTOR_VAULT_AUTH=token", str(func(c *Config) *string { return &c.VaultToken })},
	{"ROTOR_APPROLE_ROLE_ID", "", "AppRole role id when ROTOR_VAULT_AUTH=approle", str(func(c *Config) *string { return &c.AppRoleID })},
	{"ROTOR_APPROLE_ROLE_ID_FILE", "", "file holding the AppRole role id, when ROTOR_APPROLE_ROLE_ID is empty", str(func(c *Config) *string { return &c.AppRoleIDFile })},
	{"ROTOR_APPROLE_SECRET_ID_FILE", "", "file holding the AppRole secret id, read at each login", str(func(c *Config) *string { return &c.AppRoleSecretIDFile })},
	{"ROTOR_APPROLE_SECRET_ID", "", "AppRole secret id, when no file is given", str(func(c *Config) *string { return &c.AppRoleSecretID })},
	{"ROTOR_VAULT_DATABASE_MOUNT", "database", "path of Vault's database secrets engine", str(func(c *Config) *string { return &c.DatabaseMount })},
	{"ROTOR_VAULT_DATABASE_ROLE", "rotor", "Vault role that runtime database credentials are read from", str(func(c *Config) *string { return &c.DatabaseRole })},
	{"ROTOR_VAULT_MIGRATION_ROLE", "rotor-migrate", "Vault role for the migration credential; empty skips migrations", str(func(c *Config) *string { return &c.MigrationRole })},
	{"VAULT_CACERT", "", "PEM file of CAs that sign Vault's certificate", str(func(c *Config) *string { return &c.VaultCACert })},
	{"VAULT_CLIENT_CERT", "", "client certificate for Vault, PEM", str(func(c *Config) *string { return &c.VaultClientCert })},
	{"VAULT_CLIENT_KEY", "", "key of VAULT_CLIENT_CERT, PEM", str(func(c *Config) *string { return &c.VaultClientKey })},
	{"ROTOR_SHUTDOWN_TIMEOUT", "20s", "time allowed to drain requests on SIGINT or SIGTERM", shutdownTimeout},
	{"ROTOR_LOG_LEVEL", "info", "debug, info, warn or error", logLevel},
	{"ROTOR_LOG_FORMAT", "json", "json or text", logFormat},
}

// LoadConfig reads every setting through getenv, applies defaults and
// validates the result. The error lists every invalid variable.
func LoadConfig(getenv func(string) string) (Config, error) {
	var c Config
	var errs []error
	for _, s := range settings {
		value := getenv(s.name)
		if value == "" {
			value = s.def
		}
		if err := s.apply(&c, value); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", s.name, value, err))
		}
	}
	if err := c.validate(); err != nil {
		errs = append(errs, err)
	}
	return c, errors.Join(errs...)
}

// VariableNames returns the name of every environment variable that
// LoadConfig reads, in the order PrintHelp lists them.
func VariableNames() []string {
	names := make([]string, len(settings))
	for i, s := range settings {
		names[i] = s.name
	}
	return names
}

// PrintHelp writes the settings table: name, default and help.
func PrintHelp(w io.Writer) {
	fmt.Fprintln(w, "rotor serves its API over mutual TLS and is configured by environment variables:")
	fmt.Fprintln(w)
	for _, s := range settings {
		def := s.def
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(w, "  %-30s %s (default %s)\n", s.name, s.help, def)
	}
}

func (c *Config) validate() error {
	var errs []error
	if c.VaultAuth == "token" && c.VaultToken == "" {
		errs = append(errs, errors.New("VAULT_TOKEN is empty: set it, or set ROTOR_VAULT_AUTH to approle or kubernetes"))
	}
	if c.VaultAuth == "approle" {
		if c.AppRoleID == "" && c.AppRoleIDFile == "" {
			errs = append(errs, errors.New("ROTOR_APPROLE_ROLE_ID and ROTOR_APPROLE_ROLE_ID_FILE are empty: set one to rotor's AppRole role id"))
		}
		if c.AppRoleSecretID == "" && c.AppRoleSecretIDFile == "" {
			errs = append(errs, errors.New("ROTOR_APPROLE_SECRET_ID_FILE and ROTOR_APPROLE_SECRET_ID are empty: set one to rotor's AppRole secret id"))
		}
	}
	if c.DatabaseRole == "" {
		errs = append(errs, errors.New("ROTOR_VAULT_DATABASE_ROLE is empty: set it to the Vault role for runtime credentials"))
	}
	return errors.Join(errs...)
}

func str(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		*field(c) = v
		return nil
	}
}

func databaseURL(c *Config, v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		return errors.New("want a URL such as postgres://db:5432/rotor?sslmode=require")
	}
	if u.User != nil {
		return errors.New("remove the user and password: rotor takes both from Vault")
	}
	c.DatabaseURL = v
	return nil
}

func maxConns(c *Config, v string) error {
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || n < 1 {
		return errors.New("want a whole number of at least 1")
	}
	c.DBMaxConns = int32(n)
	return nil
}

func vaultAuth(c *Config, v string) error {
	switch v {
	case "token", "approle", "kubernetes":
		c.VaultAuth = v
		return nil
	}
	return errors.New("want token, approle or kubernetes")
}

func shutdownTimeout(c *Config, v string) error {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return errors.New("want a positive duration such as 20s")
	}
	c.ShutdownTimeout = d
	return nil
}

func logLevel(c *Config, v string) error {
	if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
		return errors.New("want debug, info, warn or error")
	}
	return nil
}

func logFormat(c *Config, v string) error {
	v = strings.ToLower(v)
	if v != "json" && v != "text" {
		return errors.New("want json or text")
	}
	c.LogFormat = v
	return nil
}

func tlsWatch(c *Config, v string) error {
	mode := tlsx.WatchMode(strings.ToLower(v))
	if mode != tlsx.WatchFSNotify && mode != tlsx.WatchPoll {
		return errors.New("want fsnotify or poll")
	}
	c.TLSWatch = mode
	return nil
}

func tlsPollInterval(c *Config, v string) error {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return errors.New("want a positive duration such as 10s")
	}
	c.TLSPollInterval = d
	return nil
}

func allowedClients(c *Config, v string) error {
	list, err := handlers.ParseAllowList(v)
	if err != nil {
		return err
	}
	c.AllowedClients = list
	return nil
}

// NewLogger returns a logger with the configured level and format that
// writes to w.
func NewLogger(w io.Writer, c Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// LogAttrs returns the resolved settings for the start-up log line, leaving
// out tokens and secret ids.
func (c Config) LogAttrs() []any {
	return []any{
		"listen_addr", c.ListenAddr,
		"admin_addr", c.AdminAddr,
		"tls_dir", c.TLSDir,
		"client_ca_file", c.ClientCAFile,
		"tls_watch", c.TLSWatch,
		"tls_poll_interval", c.TLSPollInterval,
		"allowed_clients", c.AllowedClients.String(),
		"database_url", c.DatabaseURL,
		"db_max_conns", c.DBMaxConns,
		"vault_addr", c.VaultAddr,
		"vault_auth", c.VaultAuth,
		"database_role", c.DatabaseRole,
		"migration_role", c.MigrationRole,
	}
}
