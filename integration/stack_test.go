package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/jackc/pgx/v5"
	"github.com/testcontainers/testcontainers-go"

	"example.com/rotor/internal/app"
	"example.com/rotor/internal/db"
	"example.com/rotor/internal/provision"
	"example.com/rotor/internal/testenv"
)

const vaultDBPassword = "vault-test-password"

// stack is Postgres, Vault configured by the provision package, and rotor
// running in-process on loopback ports.
type stack struct {
	pg    *testenv.Postgres
	vault *testenv.Vault
	root  *vault.Client
	rotor *app.App

	// rootCA is the Vault PKI root that signs server and client
	// certificates.
	rootCA *x509.CertPool

	logs *syncBuffer

	// stopRotor shuts rotor down and waits for it; later calls do nothing.
	stopRotor func()
}

// startStack starts the containers, configures them as the setup command
// does, and starts rotor with AppRole login. Everything stops in t.Cleanup.
func startStack(t *testing.T, opts provision.Options) *stack {
	t.Helper()
	return startStackWith(t, opts)
}

// startStackWith is startStack with extra options for the Postgres
// container.
func startStackWith(t *testing.T, opts provision.Options, pgOptions ...testcontainers.ContainerCustomizer) *stack {
	t.Helper()
	ctx := context.Background()

	nw := testenv.NewNetwork(t)
	s := &stack{logs: &syncBuffer{}}

	var wg sync.WaitGroup
	wg.Go(func() { s.pg = testenv.StartPostgres(t, nw, pgOptions...) })
	wg.Go(func() { s.vault = testenv.StartVault(t, nw) })
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	s.root = s.vault.RootClient(t)

	conn := s.pg.Connect(t)
	err := db.Bootstrap(ctx, conn, db.BootstrapOptions{VaultUser: "vault", VaultPassword: vaultDBPassword})
	if err != nil {
		t.Fatalf("bootstrap postgres: %v", err)
	}

	// One attempt, no retry: Postgres must be ready when its container is.
	opts.DatabaseURL = "postgresql://{{username}}:{{password}}@" + testenv.PostgresAlias + ":5432/" + testenv.PostgresDB + "?sslmode=disable"
	opts.VaultDBUser = "vault"
	opts.VaultDBPassword = vaultDBPassword
	opts.ServerDomains = []string{"localhost"}
	if err := provision.Configure(ctx, s.root, opts); err != nil {
		t.Fatalf("configure vault: %v", err)
	}

	dir := t.TempDir()
	server := s.issue(t, provision.ServerCertRole, provision.CertificateRequest{
		CommonName: "localhost", DNSNames: []string{"localhost"}, IPs: []string{"127.0.0.1"},
	})
	if err := server.WriteSecretDir(filepath.Join(dir, "server")); err != nil {
		t.Fatal(err)
	}
	s.rootCA = x509.NewCertPool()
	s.rootCA.AppendCertsFromPEM([]byte(server.RootCA))

	env := s.rotorEnv(t, filepath.Join(dir, "server"))
	s.startRotor(t, env)
	return s
}

// rotorEnv returns the environment of a rotor that serves the certificate
// in tlsDir on loopback ports and logs in to the stack's Vault with a new
// AppRole secret id.
func (s *stack) rotorEnv(t *testing.T, tlsDir string) map[string]string {
	t.Helper()

	roleID, secretID, err := provision.AppRoleCredentials(t.Context(), s.root)
	if err != nil {
		t.Fatalf("approle credentials: %v", err)
	}
	secretIDFile := filepath.Join(t.TempDir(), "secret_id")
	if err := os.WriteFile(secretIDFile, []byte(secretID), 0o600); err != nil {
		t.Fatal(err)
	}

	return map[string]string{
		"ROTOR_LISTEN_ADDR":            "127.0.0.1:0",
		"ROTOR_ADMIN_ADDR":             "127.0.0.1:0",
		"ROTOR_TLS_DIR":                tlsDir,
		"ROTOR_DATABASE_URL":           "postgres://" + s.pg.HostPort + "/" + testenv.PostgresDB + "?sslmode=disable",
		"VAULT_ADDR":                   s.vault.Addr,
		"ROTOR_VAULT_AUTH":             "approle",
		"ROTOR_APPROLE_ROLE_ID":        roleID,
		"ROTOR_APPROLE_SECRET_ID_FILE": secretIDFile,
		"ROTOR_SHUTDOWN_TIMEOUT":       "5s",
		"ROTOR_LOG_LEVEL":              "debug",
	}
}

func (s *stack) startRotor(t *testing.T, env map[string]string) {
	t.Helper()

	cfg, err := app.LoadConfig(func(name string) string { return env[name] })
	if err != nil {
		t.Fatalf("load config: %v", err)
	}
	log := slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("start rotor: %v", err)
	}
	s.rotor = a

	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx) }()
	s.stopRotor = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("rotor stopped with an error: %v", err)
		}
	})
	t.Cleanup(func() {
		s.stopRotor()
		if t.Failed() {
			t.Logf("rotor's log:\n%s", s.logs.String())
		}
	})
}

func (s *stack) issue(t *testing.T, role string, req provision.CertificateRequest) *provision.Certificate {
	t.Helper()

	cert, err := provision.IssueCertificate(context.Background(), s.root, role, req)
	if err != nil {
		t.Fatalf("issue %s certificate: %v", role, err)
	}
	return cert
}

// baseURL returns the API's address, by the name in the server certificate.
func (s *stack) baseURL() string {
	return "https://localhost:" + portOf(s.rotor.APIAddr().String())
}

func (s *stack) adminURL() string {
	return "http://" + s.rotor.AdminAddr().String()
}

// client returns an HTTP client that trusts Vault's root CA and presents a
// client certificate for identity, issued by Vault's client role.
func (s *stack) client(t *testing.T, identity string) *http.Client {
	t.Helper()

	cert := s.issue(t, provision.ClientCertRole, provision.CertificateRequest{
		CommonName: "test-client", URIs: []string{identity},
	})
	pair, err := tls.X509KeyPair([]byte(cert.Chain), []byte(cert.Key))
	if err != nil {
		t.Fatalf("load client key pair: %v", err)
	}
	return s.httpClient(&tls.Config{RootCAs: s.rootCA, Certificates: []tls.Certificate{pair}})
}

func (s *stack) httpClient(cfg *tls.Config) *http.Client {
	transport := &http.Transport{
		TLSClientConfig:   cfg,
		ForceAttemptHTTP2: true,
		DialContext:       loopbackDialer,
	}
	return &http.Client{Transport: transport, Timeout: 10 * time.Second}
}

func portOf(addr string) string {
	return addr[strings.LastIndex(addr, ":")+1:]
}

// connectAsSuperuser opens a connection for the test's own checks.
func (s *stack) connectAsSuperuser(t *testing.T) *pgx.Conn {
	t.Helper()
	return s.pg.Connect(t)
}

// syncBuffer collects rotor's log lines from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var _ io.Writer = (*syncBuffer)(nil)

// loopbackDialer dials 127.0.0.1 whatever the host name, so the client can
// ask for "localhost" (the name in the server certificate) and never reach
// ::1, where rotor does not listen.
func loopbackDialer(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, "127.0.0.1:"+portOf(addr))
}

// waitForLog waits up to five seconds for text to appear in rotor's log.
func waitForLog(t *testing.T, logs *syncBuffer, text string) {
	t.Helper()

	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("rotor's log has no line containing %q", text)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pause freezes the Vault container's processes, as a hung or unreachable
// Vault looks to its clients.
func pause(t *testing.T, v *testenv.Vault) {
	t.Helper()
	dockerCommand(t, "pause", v.Container.GetContainerID())
	t.Cleanup(func() { dockerCommandQuiet("unpause", v.Container.GetContainerID()) })
}

func unpause(t *testing.T, v *testenv.Vault) {
	t.Helper()
	dockerCommand(t, "unpause", v.Container.GetContainerID())
}

func dockerCommand(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("docker", args...).CombinedOutput(); err != nil {
		t.Fatalf("docker %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func dockerCommandQuiet(args ...string) {
	_ = exec.Command("docker", args...).Run()
}
