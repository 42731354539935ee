package testenv

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	mobynet "github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"

	// The database/sql driver that the readiness check uses.
	_ "github.com/jackc/pgx/v5/stdlib"
)

// Postgres superuser credentials inside the test container.
const (
	PostgresUser     = "postgres"
	PostgresPassword = "postgres-test-password"
	PostgresDB       = "rotor"
	PostgresAlias    = "postgres"
)

// Postgres is a running Postgres container.
type Postgres struct {
	Container *testcontainers.DockerContainer

	// URL is the superuser's connection string from the host.
	URL string

	// HostPort is the address of the mapped port on the host.
	HostPort string

	// InternalURL is the superuser's connection string from other
	// containers on the same network, by the container's alias.
	InternalURL string
}

// StartPostgres starts Postgres on nw and waits until it responds to a
// query over TCP.
//
// The official image logs "ready to accept connections" twice: once for a
// temporary server that runs the init scripts and listens only on a Unix
// socket, and again for the real one. Waiting for a log line can therefore
// return while the server is about to restart; a query over the mapped TCP
// port can only reach the real server.
//
// Extra options are applied after the defaults; FixedHostPort keeps the
// host port across a restart of the container.
func StartPostgres(tb testing.TB, nw *testcontainers.DockerNetwork, extra ...testcontainers.ContainerCustomizer) *Postgres {
	tb.Helper()
	ctx := context.Background()

	opts := []testcontainers.ContainerCustomizer{
		network.WithNetwork([]string{PostgresAlias}, nw),
		testcontainers.WithExposedPorts("5432/tcp"),
		testcontainers.WithEnv(map[string]string{
			"POSTGRES_USER":     PostgresUser,
			"POSTGRES_PASSWORD": PostgresPassword,
			"POSTGRES_DB":       PostgresDB,
		}),
		testcontainers.WithWaitStrategyAndDeadline(2*time.Minute,
			wait.ForSQL("5432/tcp", "pgx", func(host string, port mobynet.Port) string {
				return postgresURL(host, port.Port())
			}).WithPollInterval(250*time.Millisecond)),
	}
	ctr, err := testcontainers.Run(ctx, imageFromEnv("ROTOR_POSTGRES_IMAGE", DefaultPostgresImage), append(opts, extra...)...)
	testcontainers.CleanupContainer(tb, ctr)
	if err != nil {
		tb.Fatalf("start postgres container: %v", err)
	}

	endpoint, err := ctr.PortEndpoint(ctx, "5432/tcp", "")
	if err != nil {
		tb.Fatalf("postgres container endpoint: %v", err)
	}
	return &Postgres{
		Container:   ctr,
		HostPort:    endpoint,
		URL:         "postgres://" + url.UserPassword(PostgresUser, PostgresPassword).String() + "@" + endpoint + "/" + PostgresDB + "?sslmode=disable",
		InternalURL: postgresURL(PostgresAlias, "5432"),
	}
}

func postgresURL(host, port string) string {
	return fmt.Sprintf("postgres://%s@%s:%s/%s?sslmode=disable",
		url.UserPassword(PostgresUser, PostgresPassword), host, port, PostgresDB)
}

// Connect opens a superuser connection for checks made by the test itself.
func (p *Postgres) Connect(tb testing.TB) *pgx.Conn {
	tb.Helper()

	conn, err := pgx.Connect(context.Background(), p.URL)
	if err != nil {
		tb.Fatalf("connect to postgres as superuser: %v", err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
