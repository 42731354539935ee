// Package testenv starts the Postgres and Vault containers that rotor's tests
// run against, on a Docker network of their own so that Vault reaches
// Postgres by its alias. Every container and network is removed by
// t.Cleanup.
//
// Image names come from ROTOR_POSTGRES_IMAGE and ROTOR_VAULT_IMAGE, which
// default to the public images; deploy/images.sh builds local stand-ins on
// machines that cannot pull them. The Ryuk reaper is disabled unless
// TESTCONTAINERS_RYUK_DISABLED is set, because its image cannot be pulled
// everywhere and t.Cleanup already removes what the tests start.
package testenv

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"

	"github.com/moby/moby/api/types/container"
	mobynet "github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
)

// Default images, used when the environment variables are unset.
const (
	DefaultPostgresImage = "postgres:15"
	DefaultVaultImage    = "hashicorp/vault:1.13.0"
)

func init() {
	if _, ok := os.LookupEnv("TESTCONTAINERS_RYUK_DISABLED"); !ok {
		os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
}

func imageFromEnv(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

// NewNetwork creates a Docker network for one test's containers.
func NewNetwork(tb testing.TB) *testcontainers.DockerNetwork {
	tb.Helper()

	nw, err := network.New(context.Background())
	testcontainers.CleanupNetwork(tb, nw)
	if err != nil {
		tb.Fatalf("create docker network: %v", err)
	}
	return nw
}

// FixedHostPort binds the container's port to a free port on 127.0.0.1
// chosen now. Docker otherwise picks a new host port when a stopped
// container starts again, and a client configured with the old one could
// not reconnect.
func FixedHostPort(tb testing.TB, port string) testcontainers.CustomizeRequestOption {
	tb.Helper()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("find a free port: %v", err)
	}
	hostPort := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()

	return testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
		hc.PortBindings = mobynet.PortMap{
			mobynet.MustParsePort(port): {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: hostPort}},
		}
	})
}
