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
	"os"
	"testing"

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
