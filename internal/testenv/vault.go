package testenv

import (
	"context"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
)

// VaultRootToken is the root token of the development server in the test
// container.
const VaultRootToken = "rotor-test-root"

// Vault is a running Vault development server: in memory, unsealed, with a
// known root token.
type Vault struct {
	Container *testcontainers.DockerContainer

	// Addr is Vault's address from the host, such as http://127.0.0.1:32768.
	Addr string
}

// StartVault starts a Vault development server on nw and waits until it
// reports itself initialised and unsealed.
func StartVault(tb testing.TB, nw *testcontainers.DockerNetwork) *Vault {
	tb.Helper()
	ctx := context.Background()

	ctr, err := testcontainers.Run(ctx, imageFromEnv("ROTOR_VAULT_IMAGE", DefaultVaultImage),
		network.WithNetwork([]string{"vault"}, nw),
		testcontainers.WithExposedPorts("8200/tcp"),
		testcontainers.WithCmd("server", "-dev",
			"-dev-root-token-id="+VaultRootToken,
			"-dev-listen-address=0.0.0.0:8200"),
		// The official image's entry point would otherwise try to give
		// the binary the mlock capability, which a dev server does not use.
		testcontainers.WithEnv(map[string]string{"SKIP_SETCAP": "true"}),
		testcontainers.WithWaitStrategyAndDeadline(time.Minute,
			wait.ForHTTP("/v1/sys/health").WithPort("8200/tcp").
				WithStatusCodeMatcher(func(status int) bool { return status == 200 }).
				WithPollInterval(250*time.Millisecond)),
	)
	testcontainers.CleanupContainer(tb, ctr)
	if err != nil {
		tb.Fatalf("start vault container: %v", err)
	}

	endpoint, err := ctr.PortEndpoint(ctx, "8200/tcp", "http")
	if err != nil {
		tb.Fatalf("vault container endpoint: %v", err)
	}
	return &Vault{Container: ctr, Addr: endpoint}
}

// RootClient returns a Vault client that uses the root token.
func (v *Vault) RootClient(tb testing.TB) *vault.Client {
	tb.Helper()

	cfg := vault.DefaultConfig()
	cfg.Address = v.Addr
	client, err := vault.NewClient(cfg)
	if err != nil {
		tb.Fatalf("create vault client: %v", err)
	}
	client.SetToken(VaultRootToken)
	return client
}
