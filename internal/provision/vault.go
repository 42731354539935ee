package provision

import (
	"context"
	"fmt"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// Names that rotor and Vault share.
const (
	DatabaseMount     = "database"
	DatabaseConfig    = "rotor"
	RuntimeRole       = "rotor"
	MigrationRole     = "rotor-migrate"
	Policy            = "rotor"
	AppRoleMount      = "approle"
	AppRoleName       = "rotor"
	KubernetesMount   = "kubernetes"
	KubernetesRole    = "rotor"
	IssuerRole        = "rotor-issuer"
	IssuerPolicy      = "rotor-issuer"
	RootPKIMount      = "pki"
	IntermediateMount = "pki_int"
	ServerCertRole    = "server"
	ClientCertRole    = "client"
)

// Options sets what Configure writes. Zero durations take the defaults
// listed on each field.
type Options struct {
	// DatabaseURL is the connection URL Vault uses to reach Postgres, with
	// the {{username}} and {{password}} placeholders, for example
	// "postgresql://{{username}}:{{password}}@postgres:5432/rotor?sslmode=disable".
	DatabaseURL string

	// VaultDBUser and VaultDBPassword are Vault's own Postgres login (see
	// db.Bootstrap); it needs CREATEROLE, not superuser.
	VaultDBUser     string
	VaultDBPassword string

	// RuntimeTTL and RuntimeMaxTTL bound the runtime credentials; defaults
	// 1h and 24h.
	RuntimeTTL    time.Duration
	RuntimeMaxTTL time.Duration

	// MigrationTTL bounds the migration credential; default 5m, max twice
	// that.
	MigrationTTL time.Duration

	// TokenTTL and TokenMaxTTL bound the tokens that rotor's AppRole and
	// Kubernetes logins get; defaults 1h and 24h.
	TokenTTL    time.Duration
	TokenMaxTTL time.Duration

	// ServerDomains are the names the server certificate role may issue
	// for, with their subdomains; localhost and IP SANs are always allowed.
	ServerDomains []string

	// Kubernetes configures Kubernetes auth for rotor and for a
	// cert-manager Vault Issuer; the zero value skips it.
	Kubernetes KubernetesOptions
}

func (o *Options) setDefaults() {
	setDefault(&o.RuntimeTTL, time.Hour)
	setDefault(&o.RuntimeMaxTTL, 24*time.Hour)
	setDefault(&o.MigrationTTL, 5*time.Minute)
	setDefault(&o.TokenTTL, time.Hour)
	setDefault(&o.TokenMaxTTL, 24*time.Hour)
	o.Kubernetes.setDefaults()
	if len(o.ServerDomains) == 0 {
		o.ServerDomains = []string{"rotor", "rotor.local", "svc.cluster.local"}
	}
}

func setDefault(d *time.Duration, value time.Duration) {
	if *d <= 0 {
		*d = value
	}
}

// Configure brings Vault to the configuration rotor expects. It needs a
// token allowed to manage mounts, auth methods and policies (root in the
// development stack).
func Configure(ctx context.Context, client *vault.Client, opts Options) error {
	opts.setDefaults()

	steps := []struct {
		name string
		run  func(context.Context, *vault.Client, Options) error
	}{
		{"database secrets engine", configureDatabase},
		{"policy", configurePolicy},
		{"approle", configureAppRole},
		{"kubernetes auth", configureKubernetes},
		{"pki", configurePKI},
	}
	for _, step := range steps {
		if err := step.run(ctx, client, opts); err != nil {
			return fmt.Errorf("configure vault %s: %w", step.name, err)
		}
	}
	return nil
}

// enableMount mounts a secrets engine at path unless one is mounted there.
func enableMount(ctx context.Context, client *vault.Client, path, engine string, maxTTL time.Duration) error {
	mounts, err := client.Sys().ListMountsWithContext(ctx)
	if err != nil {
		return fmt.Errorf("list secrets engines: %w", err)
	}
	if m, ok := mounts[path+"/"]; ok {
		if m.Type != engine {
			return fmt.Errorf("%s/ is mounted with %s, want %s", path, m.Type, engine)
		}
		return nil
	}

	input := &vault.MountInput{Type: engine}
	if maxTTL > 0 {
		input.Config.MaxLeaseTTL = maxTTL.String()
	}
	if err := client.Sys().MountWithContext(ctx, path, input); err != nil {
		return fmt.Errorf("mount %s at %s/: %w", engine, path, err)
	}
	return nil
}

func write(ctx context.Context, client *vault.Client, path string, data map[string]any) (*vault.Secret, error) {
	secret, err := client.Logical().WriteWithContext(ctx, path, data)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return secret, nil
}

func seconds(d time.Duration) int {
	return int(d / time.Second)
}

func joinLines(lines ...string) string {
	return strings.Join(lines, "\n")
}
