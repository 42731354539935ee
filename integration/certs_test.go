package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"example.com/rotor/internal/handlers"
	"example.com/rotor/internal/provision"
	"example.com/rotor/internal/testenv"
	"example.com/rotor/internal/tlsx"
	"example.com/rotor/internal/tlsx/tlsxtest"
)

// TestCertRotation renews rotor's server certificate and rotates its client
// trust bundle while it runs, and checks that it never needs a restart and
// never fails a handshake on the way.
func TestCertRotation(t *testing.T) {
	s := startStack(t, provision.Options{})

	t.Run("kubelet swaps", func(t *testing.T) {
		// An hour between polls leaves the directory watch as the only
		// trigger.
		r := startCertRotor(t, s, certRotorOptions{env: map[string]string{"ROTOR_TLS_POLL_INTERVAL": "1h"}})

		for i := 1; i <= 3; i++ {
			renewed := r.issueServer(t)
			r.publishServer(t, renewed)

			r.waitForServedSerial(t, leafSerial(t, renewed))
			lines := logLines(r.logs, `msg="reloaded TLS certificate"`, "serial="+leafSerial(t, renewed).Text(16))
			if len(lines) != 1 {
				t.Errorf("swap %d: log lines for the reload: got %d, want 1", i, len(lines))
			}
		}
	})

	t.Run("kubelet swaps polled", func(t *testing.T) {
		r := startCertRotor(t, s, certRotorOptions{env: map[string]string{
			"ROTOR_TLS_WATCH":         "poll",
			"ROTOR_TLS_POLL_INTERVAL": "200ms",
		}})

		for range 3 {
			renewed := r.issueServer(t)
			r.publishServer(t, renewed)

			r.waitForServedSerial(t, leafSerial(t, renewed))
		}
	})

	t.Run("key written after certificate", func(t *testing.T) {
		r := startCertRotor(t, s, certRotorOptions{plainFiles: true})
		before := r.servedSerial(t)
		renewed := r.issueServer(t)
		want := leafSerial(t, renewed)

		// Requests, each on a new connection, run for the whole update.
		probe := r.freshClient(r.probe)
		stop := make(chan struct{})
		var result struct {
			requests, failures, otherSerial, backToOld int
			seenNew                                    bool
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			// The bound only ends a loop whose stop signal never arrives.
			for range 100_000 {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := probe.Get(r.baseURL() + "/v1/notes")
				result.requests++
				if err != nil {
					result.failures++
					t.Errorf("request during the update: %v", err)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					result.failures++
					t.Errorf("request during the update: got status %d, want 200", resp.StatusCode)
				}
				switch serial := resp.TLS.PeerCertificates[0].SerialNumber; {
				case serial.Cmp(want) == 0:
					result.seenNew = true
				case serial.Cmp(before) != 0:
					result.otherSerial++
				case result.seenNew:
					result.backToOld++
				}
			}
		})

		writeFile(t, filepath.Join(r.serverDir, tlsx.CertFile), renewed.Chain)
		time.Sleep(500 * time.Millisecond)
		writeFile(t, filepath.Join(r.serverDir, tlsx.KeyFile), renewed.Key)
		r.waitForServedSerial(t, want)
		close(stop)
		wg.Wait()

		t.Logf("%d requests during the update", result.requests)
		if result.requests == 0 {
			t.Error("requests during the update: got 0, want at least one")
		}
		if result.failures != 0 {
			t.Errorf("failed requests: got %d, want 0", result.failures)
		}
		if result.otherSerial != 0 {
			t.Errorf("requests served with neither the old nor the new certificate: got %d, want 0", result.otherSerial)
		}
		if result.backToOld != 0 {
			t.Errorf("requests served with the old certificate after the new one: got %d, want 0", result.backToOld)
		}
	})

	t.Run("trust bundle rotation", func(t *testing.T) {
		r := startCertRotor(t, s, certRotorOptions{env: map[string]string{"ROTOR_TLS_POLL_INTERVAL": "1h"}})
		oldRoot := []byte(r.issueServer(t).RootCA)
		newCA := tlsxtest.NewCA(t, "new client CA")
		newRoot := tlsxtest.EncodeCertificates(newCA.Cert)

		oldClient := r.freshClient(r.clientConfig(t, alice))
		newPair := newCA.IssueClient(t, alice).TLSCertificate()
		newClient := r.freshClient(&tls.Config{RootCAs: r.rootCA, Certificates: []tls.Certificate{newPair}})

		steps := []struct {
			name         string
			bundle       []byte // nil keeps the bundle that startCertRotor wrote
			oldOK, newOK bool
		}{
			{name: "old CA only", oldOK: true, newOK: false},
			{name: "old and new CA", bundle: append(append([]byte{}, oldRoot...), newRoot...), oldOK: true, newOK: true},
			{name: "new CA only", bundle: newRoot, oldOK: false, newOK: true},
		}
		for i, step := range steps {
			if step.bundle != nil {
				r.writeBundle(t, step.bundle)
				waitForReloads(t, r, i)
			}

			checkHandshake(t, step.name+", client of the old CA", r, oldClient, step.oldOK)
			checkHandshake(t, step.name+", client of the new CA", r, newClient, step.newOK)
		}
	})

	t.Run("swaps under load", func(t *testing.T) {
		r := startCertRotor(t, s, certRotorOptions{})
		const swaps = 100
		certs := make([]*provision.Certificate, swaps)
		for i := range certs {
			certs[i] = r.issueServer(t)
		}

		load := startCertLoad(t, r)
		for _, cert := range certs {
			r.publishServer(t, cert)
			r.waitForServedSerial(t, leafSerial(t, cert))
		}
		requests, failures := load.stop()

		t.Logf("%d swaps, %d requests during them", swaps, requests)
		if requests == 0 {
			t.Error("requests during the swaps: got 0, want many")
		}
		if len(failures) != 0 {
			t.Errorf("failed requests: got %d, want 0; first: %s", len(failures), failures[0])
		}
		if got := len(logLines(r.logs, `msg="reloaded TLS certificate"`)); got != swaps {
			t.Errorf("reloads logged: got %d, want %d", got, swaps)
		}
	})
}

// writeFile rewrites path in place, as a tool without atomic renames does.
func writeFile(t *testing.T, path, content string) {
	t.Helper()

	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitForReloads waits until rotor has logged want successful reloads.
func waitForReloads(t *testing.T, r *certRotor, want int) {
	t.Helper()

	deadline := time.Now().Add(certWaitTimeout)
	for len(logLines(r.logs, `msg="reloaded TLS certificate"`)) < want {
		if time.Now().After(deadline) {
			t.Fatalf("rotor did not log %d reloads within %s", want, certWaitTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkHandshake sends one request on a new connection and checks that
// rotor serves it, or rejects the handshake when wantOK is false.
func checkHandshake(t *testing.T, name string, r *certRotor, client *http.Client, wantOK bool) {
	t.Helper()

	resp, err := client.Get(r.baseURL() + "/v1/notes")
	if err == nil {
		resp.Body.Close()
	}
	switch {
	case wantOK && err != nil:
		t.Errorf("%s: got %v, want the request served", name, err)
	case wantOK && resp.StatusCode != http.StatusOK:
		t.Errorf("%s: got status %d, want 200", name, resp.StatusCode)
	case !wantOK && err == nil:
		t.Errorf("%s: got status %d, want a rejected handshake", name, resp.StatusCode)
	}
}

// certLoad sends requests to rotor from several goroutines until stop:
// three open a new connection for each request, so that every request runs
// a handshake, and one keeps its HTTP/2 connection.
type certLoad struct {
	done chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	requests int
	failures []string
}

func startCertLoad(t *testing.T, r *certRotor) *certLoad {
	t.Helper()

	load := &certLoad{done: make(chan struct{})}
	clients := []*http.Client{
		r.freshClient(r.probe), r.freshClient(r.probe), r.freshClient(r.probe),
		r.httpClient(r.probe.Clone()),
	}
	for i, client := range clients {
		load.wg.Go(func() { load.run(r, fmt.Sprintf("client %d", i), client) })
	}
	return load
}

func (l *certLoad) run(r *certRotor, name string, client *http.Client) {
	defer client.CloseIdleConnections()

	// The bound only ends a loop whose done signal never arrives.
	for i := range 1_000_000 {
		select {
		case <-l.done:
			return
		default:
		}
		failure := ""
		if i%2 == 0 {
			failure = l.send(client, http.MethodPost, r.baseURL()+"/v1/notes", `{"title":"under load"}`, http.StatusCreated)
		} else {
			failure = l.send(client, http.MethodGet, r.baseURL()+"/v1/notes", "", http.StatusOK)
		}

		l.mu.Lock()
		l.requests++
		if failure != "" {
			l.failures = append(l.failures, name+": "+failure)
		}
		l.mu.Unlock()
	}
}

// send returns "" when the request gets wantStatus, and what went wrong
// otherwise.
func (l *certLoad) send(client *http.Client, method, url, body string, wantStatus int) string {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return err.Error()
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Sprintf("%s %s: %v", method, url, err)
	}
	resp.Body.Close()
	if resp.StatusCode != wantStatus {
		return fmt.Sprintf("%s %s: got status %d, want %d", method, url, resp.StatusCode, wantStatus)
	}
	return ""
}

// stop ends the load and returns the number of requests and the failures.
func (l *certLoad) stop() (int, []string) {
	close(l.done)
	l.wg.Wait()
	return l.requests, l.failures
}

// TestCertRejections sends clients that rotor must turn away, at the
// handshake or with 403, and checks that rotor's log names the reason.
func TestCertRejections(t *testing.T) {
	s := startStack(t, provision.Options{})
	r := startCertRotor(t, s, certRotorOptions{env: map[string]string{
		"ROTOR_ALLOWED_CLIENTS": alice + ", spiffe://rotor.test/team/*",
	}})

	// A second CA in the trust bundle issues the expired certificate,
	// which Vault cannot.
	testCA := tlsxtest.NewCA(t, "test client CA")
	r.writeBundle(t, append([]byte(r.issueServer(t).RootCA), tlsxtest.EncodeCertificates(testCA.Cert)...))
	waitForReloads(t, r, 1)
	expired := testCA.Issue(t, tlsxtest.Leaf{
		URIs:        []string{alice},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		NotBefore:   time.Now().Add(-48 * time.Hour),
		NotAfter:    time.Now().Add(-time.Hour),
	})
	stranger := tlsxtest.NewCA(t, "untrusted CA").IssueClient(t, alice)
	// A server certificate, as cert-manager issues by default, has no
	// client auth usage.
	serverRole := r.issue(t, provision.ServerCertRole, provision.CertificateRequest{CommonName: "localhost", DNSNames: []string{"localhost"}})
	serverRolePair, err := tls.X509KeyPair([]byte(serverRole.Chain), []byte(serverRole.Key))
	if err != nil {
		t.Fatal(err)
	}

	// presenting returns a client config that sends pair even when its
	// issuer is not among the CAs that rotor requests, as a misconfigured
	// client would. Nil sends no certificate.
	presenting := func(pair *tls.Certificate) *tls.Config {
		return &tls.Config{
			RootCAs: r.rootCA,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				if pair == nil {
					return &tls.Certificate{}, nil
				}
				return pair, nil
			},
		}
	}

	handshakeCases := []struct {
		name       string
		config     *tls.Config
		wantReason string
	}{
		{"no client certificate", presenting(nil), "no_client_certificate"},
		{"certificate from an untrusted CA", presenting(ptr(stranger.TLSCertificate())), "unknown_authority"},
		{"expired certificate", presenting(ptr(expired.TLSCertificate())), "expired_or_not_yet_valid"},
		{"certificate without client auth", presenting(&serverRolePair), "incompatible_key_usage"},
	}
	for _, tc := range handshakeCases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := r.freshClient(tc.config).Get(r.baseURL() + "/v1/notes")
			if err == nil {
				resp.Body.Close()
				t.Fatalf("got status %d, want a rejected handshake", resp.StatusCode)
			}

			waitForLog(t, r.logs, "reason="+tc.wantReason)
			lines := logLines(r.logs, `msg="TLS handshake rejected"`, "reason="+tc.wantReason)
			if len(lines) != 1 {
				t.Fatalf("log lines with reason %s: got %d, want 1", tc.wantReason, len(lines))
			}
			for _, want := range []string{"level=WARN", "component=http", "remote_addr=127.0.0.1:", "error="} {
				if !strings.Contains(lines[0], want) {
					t.Errorf("log line %q: want it to contain %q", lines[0], want)
				}
			}
		})
	}

	t.Run("identity not allowed", func(t *testing.T) {
		const mallory = "spiffe://rotor.test/client/mallory"

		status, header, body := do(t, r.freshClient(r.clientConfig(t, mallory)), "GET", r.baseURL()+"/v1/notes", "", nil)

		if status != http.StatusForbidden {
			t.Fatalf("got status %d, want 403: %s", status, body)
		}
		if ct := header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("got Content-Type %q, want application/problem+json", ct)
		}
		if p := decode[problem](t, body); p.Type != handlers.ProblemForbidden {
			t.Errorf("got problem type %q, want %q", p.Type, handlers.ProblemForbidden)
		}
		lines := logLines(r.logs, `msg="client identity not allowed"`, "client_identity="+mallory)
		if len(lines) != 1 {
			t.Errorf("log lines for %s: got %d, want 1", mallory, len(lines))
		}
	})

	t.Run("identities allowed", func(t *testing.T) {
		for _, identity := range []string{alice, "spiffe://rotor.test/team/carol"} {
			status, _, body := do(t, r.freshClient(r.clientConfig(t, identity)), "GET", r.baseURL()+"/v1/notes", "", nil)
			if status != http.StatusOK {
				t.Errorf("%s: got status %d, want 200: %s", identity, status, body)
			}
		}
	})
}

// TestCertRenewJob runs the certrenew command of the compose stack against
// the test's Vault: it turns a directory that setup wrote into the kubelet
// layout and renews it every second, and rotor and a reloading client keep
// working across the renewals.
func TestCertRenewJob(t *testing.T) {
	s := startStack(t, provision.Options{})
	dir := t.TempDir()
	r := startCertRotor(t, s, certRotorOptions{plainFiles: true})
	certDir := filepath.Dir(r.serverDir)
	first := r.servedSerial(t)
	// Setup writes the client directory as plain files too.
	client := r.issue(t, provision.ClientCertRole, provision.CertificateRequest{CommonName: "demo-client", URIs: []string{alice}})
	if err := client.WriteSecretDir(filepath.Join(certDir, "client")); err != nil {
		t.Fatal(err)
	}

	binary := filepath.Join(dir, "certrenew")
	if out, err := exec.Command("go", "build", "-o", binary, "example.com/rotor/cmd/certrenew").CombinedOutput(); err != nil {
		t.Fatalf("build certrenew: %v\n%s", err, out)
	}
	job := exec.Command(binary)
	job.Env = append(os.Environ(),
		"VAULT_ADDR="+s.vault.Addr,
		"VAULT_TOKEN="+testenv.VaultRootToken,
		"CERTRENEW_DIR="+certDir,
		"CERTRENEW_INTERVAL=1s",
		"CERTRENEW_TTL=1h",
		"CERTRENEW_OWNER="+strconv.Itoa(os.Getuid()),
		"CERTRENEW_SERVER_NAMES=localhost",
		"CERTRENEW_CLIENT_ID="+alice,
	)
	var jobOutput syncBuffer
	job.Stdout, job.Stderr = &jobOutput, &jobOutput
	if err := job.Start(); err != nil {
		t.Fatalf("start certrenew: %v", err)
	}
	jobDone := make(chan error, 1)
	go func() { jobDone <- job.Wait() }()
	stopJob := sync.OnceFunc(func() {
		job.Process.Signal(syscall.SIGTERM)
		if err := <-jobDone; err != nil {
			t.Errorf("certrenew exited with %v, want exit status 0 after SIGTERM", err)
		}
	})
	t.Cleanup(func() {
		stopJob()
		if t.Failed() {
			t.Logf("certrenew's output:\n%s", jobOutput.String())
		}
	})

	// The client reloads its certificate as cmd/client does.
	clientSource, err := tlsx.LoadClient(filepath.Join(certDir, "client"))
	if err != nil {
		t.Fatalf("load client certificate: %v", err)
	}
	startClientReloader(t, clientSource)
	demoClient := r.freshClient(clientSource.ClientConfig())

	// Until rotor has presented three serials in a row (the one setup
	// wrote and two renewals) and the client has presented three, every
	// request must succeed.
	servedSerials := []*big.Int{first}
	clientSerials := []*big.Int{clientSource.Leaf().SerialNumber}
	deadline := time.Now().Add(certWaitTimeout)
	for len(servedSerials) < 3 || len(clientSerials) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("within %s rotor presented %d serials and the client %d, want 3 each", certWaitTimeout, len(servedSerials), len(clientSerials))
		}
		if serial := r.servedSerial(t); serial.Cmp(servedSerials[len(servedSerials)-1]) != 0 {
			servedSerials = append(servedSerials, serial)
		}
		if serial := clientSource.Leaf().SerialNumber; serial.Cmp(clientSerials[len(clientSerials)-1]) != 0 {
			clientSerials = append(clientSerials, serial)
		}
		status, _, body := do(t, demoClient, "GET", r.baseURL()+"/v1/notes", "", nil)
		if status != http.StatusOK {
			t.Errorf("request with the client certificate %x: got status %d, want 200: %s", clientSource.Leaf().SerialNumber, status, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopJob()

	if target, err := os.Readlink(filepath.Join(r.serverDir, tlsx.CertFile)); err != nil || target != "..data/tls.crt" {
		t.Errorf("server tls.crt after renewal: got symlink to %q (error %v), want ..data/tls.crt", target, err)
	}
	if target, err := os.Readlink(filepath.Join(certDir, "client", tlsx.KeyFile)); err != nil || target != "..data/tls.key" {
		t.Errorf("client tls.key after renewal: got symlink to %q (error %v), want ..data/tls.key", target, err)
	}
}

// startClientReloader runs a Reloader for source until the test ends.
func startClientReloader(t *testing.T, source *tlsx.ClientSource) {
	t.Helper()

	reloader, err := tlsx.NewReloader(source, tlsx.ReloaderConfig{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatalf("NewReloader: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	running.Go(func() { reloader.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		running.Wait()
	})
}
