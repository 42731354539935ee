package tlsx_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"example.com/rotor/internal/tlsx"
	"example.com/rotor/internal/tlsx/tlsxtest"
)

// waitTimeout bounds every wait for a reload. It is far longer than a
// reload takes, so that only a reload that never happens fails a test.
const waitTimeout = 15 * time.Second

// runningReloader is a Reloader whose Run goroutine the test's cleanup
// stops and waits for.
type runningReloader struct {
	registry *prometheus.Registry
	logs     *logBuffer
}

// startReloader creates a Reloader for source with a registry and a JSON
// log of its own, and runs it until the test ends.
func startReloader(t testing.TB, source tlsx.Reloadable, cfg tlsx.ReloaderConfig) *runningReloader {
	t.Helper()

	r := &runningReloader{registry: prometheus.NewRegistry(), logs: &logBuffer{}}
	cfg.Registerer = r.registry
	cfg.Logger = slog.New(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reloader, err := tlsx.NewReloader(source, cfg)
	if err != nil {
		t.Fatalf("NewReloader: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		reloader.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			t.Errorf("Run did not return within %s after its context ended", waitTimeout)
		}
		if t.Failed() {
			t.Logf("reloader log:\n%s", r.logs)
		}
	})
	return r
}

// counter returns the value of the unlabelled counter name.
func (r *runningReloader) counter(t testing.TB, name string) float64 {
	t.Helper()

	families, err := r.registry.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, family := range families {
		if family.GetName() == name {
			return family.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s is not registered", name)
	return 0
}

// waitForCounter waits until the counter name reaches at least want.
func (r *runningReloader) waitForCounter(t testing.TB, name string, want float64) {
	t.Helper()

	waitFor(t, name+" to reach "+big.NewFloat(want).String(), func() bool { return r.counter(t, name) >= want })
}

// waitFor calls done until it returns true, and fails the test when that
// takes longer than waitTimeout.
func waitFor(t testing.TB, what string, done func() bool) {
	t.Helper()

	deadline := time.Now().Add(waitTimeout)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", waitTimeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitForSerial runs handshakes until the server presents the certificate
// with serial want.
func waitForSerial(t testing.TB, ts *testServer, ca *tlsxtest.CA, client *tlsxtest.KeyPair, want *big.Int) {
	t.Helper()

	waitFor(t, "the server to present serial "+want.String(), func() bool {
		return servedSerial(t, ts, ca, client).Cmp(want) == 0
	})
}

// logBuffer collects JSON log lines from the Run goroutine.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// records returns the decoded log records with the level and message.
func (b *logBuffer) records(t testing.TB, level slog.Level, msg string) []map[string]any {
	t.Helper()

	var matched []map[string]any
	scanner := bufio.NewScanner(strings.NewReader(b.String()))
	for scanner.Scan() {
		var record map[string]any
		if err := json.Unmarshal(scanner.Bytes(), &record); err != nil {
			t.Fatalf("decode log line %s: %v", scanner.Bytes(), err)
		}
		if record[slog.LevelKey] == level.String() && record[slog.MessageKey] == msg {
			matched = append(matched, record)
		}
	}
	return matched
}

// Log messages of the Reloader.
const (
	msgReloaded     = "reloaded TLS certificate"
	msgReloadFailed = "reloading TLS certificate failed; the last good certificate stays in use"
)

func TestReloaderFollowsKubeletSwaps(t *testing.T) {
	tests := []struct {
		name string
		cfg  tlsx.ReloaderConfig
	}{
		// A poll interval of an hour leaves the watch as the only trigger.
		{name: "fsnotify", cfg: tlsx.ReloaderConfig{Mode: tlsx.WatchFSNotify, PollInterval: time.Hour}},
		{name: "poll", cfg: tlsx.ReloaderConfig{Mode: tlsx.WatchPoll, PollInterval: 20 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := tlsxtest.NewCA(t, "rotor test CA")
			client := ca.IssueClient(t, "spiffe://rotor.example/client/alice")
			dir := t.TempDir()
			tlsxtest.WriteVolume(t, dir, tlsxtest.SecretFiles(t, ca.IssueServer(t, "127.0.0.1"), ca))
			source := mustLoad(t, dir, "")
			ts := startServer(t, source)
			reloader := startReloader(t, source, tt.cfg)

			const swaps = 3
			for i := 1; i <= swaps; i++ {
				renewed := ca.IssueServer(t, "127.0.0.1")
				tlsxtest.WriteVolume(t, dir, tlsxtest.SecretFiles(t, renewed, ca))

				waitForSerial(t, ts, ca, client, renewed.Cert.SerialNumber)
			}

			if got := reloader.counter(t, "rotor_tls_reloads_total"); got != swaps {
				t.Errorf("rotor_tls_reloads_total: got %v, want %d", got, swaps)
			}
			if got := len(reloader.logs.records(t, slog.LevelInfo, msgReloaded)); got != swaps {
				t.Errorf("Info lines %q: got %d, want %d", msgReloaded, got, swaps)
			}
		})
	}
}

func TestReloaderKeyWrittenAfterCertificate(t *testing.T) {
	f := newFixture(t)
	source := mustLoad(t, f.dir, "")
	ts := startServer(t, source)
	startReloader(t, source, tlsx.ReloaderConfig{})
	renewed := f.ca.IssueServer(t, "localhost", "127.0.0.1")

	// Handshakes run for the whole update. Each one must succeed and
	// present the old certificate until the first that presents the new
	// one, and the new one from then on.
	stop := make(chan struct{})
	var handshakes struct {
		sync.Mutex
		count, failures, wrongSerial, backToOld int
		seenNew                                 bool
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
			resp, err := get(t, ts.url, tlsxtest.ClientConfig(t, f.ca, f.client), true)

			handshakes.Lock()
			handshakes.count++
			switch {
			case err != nil:
				handshakes.failures++
				t.Errorf("handshake during the update: %v", err)
			case resp.TLS.PeerCertificates[0].SerialNumber.Cmp(renewed.Cert.SerialNumber) == 0:
				handshakes.seenNew = true
			case resp.TLS.PeerCertificates[0].SerialNumber.Cmp(f.server.Cert.SerialNumber) != 0:
				handshakes.wrongSerial++
			case handshakes.seenNew:
				handshakes.backToOld++
			}
			handshakes.Unlock()
		}
	})

	tlsxtest.WriteFile(t, filepath.Join(f.dir, tlsx.CertFile), renewed.ChainPEM())
	time.Sleep(500 * time.Millisecond)
	tlsxtest.WriteFile(t, filepath.Join(f.dir, tlsx.KeyFile), renewed.KeyPEM(t))
	waitForSerial(t, ts, f.ca, f.client, renewed.Cert.SerialNumber)
	close(stop)
	wg.Wait()

	t.Logf("%d handshakes during the update", handshakes.count)
	if handshakes.count == 0 {
		t.Error("handshakes during the update: got 0, want at least one")
	}
	if handshakes.failures != 0 {
		t.Errorf("failed handshakes: got %d, want 0", handshakes.failures)
	}
	if handshakes.wrongSerial != 0 {
		t.Errorf("handshakes presenting neither the old nor the new certificate: got %d, want 0", handshakes.wrongSerial)
	}
	if handshakes.backToOld != 0 {
		t.Errorf("handshakes presenting the old certificate after the new one: got %d, want 0", handshakes.backToOld)
	}
}

func TestReloaderRetriesWithoutEvent(t *testing.T) {
	f := newFixture(t)
	// tls.key is a symlink to a file outside the watched directory, so
	// writing the new key makes no event there.
	keyTarget := filepath.Join(t.TempDir(), "server.key")
	tlsxtest.WriteFile(t, keyTarget, f.server.KeyPEM(t))
	keyPath := filepath.Join(f.dir, tlsx.KeyFile)
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(keyTarget, keyPath); err != nil {
		t.Fatal(err)
	}
	source := mustLoad(t, f.dir, "")
	ts := startServer(t, source)
	reloader := startReloader(t, source, tlsx.ReloaderConfig{PollInterval: time.Hour, RetryDelay: 50 * time.Millisecond})
	renewed := f.ca.IssueServer(t, "localhost", "127.0.0.1")
	certPath := filepath.Join(f.dir, tlsx.CertFile)

	// The rename keeps the reloader from reading half a file, so that the
	// only failure is the key that does not match.
	writeFileByRename(t, certPath, renewed.ChainPEM())
	reloader.waitForCounter(t, "rotor_tls_reload_failures_total", 1)

	assertSerial(t, "served leaf while the key is old", servedSerial(t, ts, f.ca, f.client), f.server.Cert.SerialNumber)
	waitFor(t, "the failure to be logged", func() bool {
		return len(reloader.logs.records(t, slog.LevelError, msgReloadFailed)) > 0
	})
	failure := reloader.logs.records(t, slog.LevelError, msgReloadFailed)[0]
	errText, _ := failure["err"].(string)
	for _, want := range []string{certPath, keyPath, "private key does not match public key"} {
		if !strings.Contains(errText, want) {
			t.Errorf("logged error %q: want it to contain %q", errText, want)
		}
	}
	if got, want := failure["serial"], f.server.Cert.SerialNumber.Text(16); got != want {
		t.Errorf("logged serial in use: got %v, want %s", got, want)
	}

	writeFileByRename(t, keyTarget, renewed.KeyPEM(t))

	waitForSerial(t, ts, f.ca, f.client, renewed.Cert.SerialNumber)
	// Every retry failed with the same error, which is logged once.
	if got := len(reloader.logs.records(t, slog.LevelError, msgReloadFailed)); got != 1 {
		t.Errorf("Error lines %q: got %d, want 1", msgReloadFailed, got)
	}
	if got := reloader.counter(t, "rotor_tls_reloads_total"); got != 1 {
		t.Errorf("rotor_tls_reloads_total: got %v, want 1", got)
	}
}

// writeFileByRename replaces path with a file that contains data in one
// step, by writing a temporary file beside it and renaming it.
func writeFileByRename(t *testing.T, path string, data []byte) {
	t.Helper()

	tmp := path + ".tmp"
	tlsxtest.WriteFile(t, tmp, data)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestReloaderTrustBundleRotation(t *testing.T) {
	f := newFixture(t)
	oldCA := tlsxtest.NewCA(t, "old client CA")
	newCA := tlsxtest.NewCA(t, "new client CA")
	oldClient := tlsxtest.ClientConfig(t, f.ca, oldCA.IssueClient(t, "spiffe://rotor.example/client/old"))
	newClient := tlsxtest.ClientConfig(t, f.ca, newCA.IssueClient(t, "spiffe://rotor.example/client/new"))

	// The bundle is a ConfigMap of its own, as trust-manager writes it.
	bundleDir := t.TempDir()
	writeBundle := func(cas ...*tlsxtest.CA) {
		var pem []byte
		for _, ca := range cas {
			pem = append(pem, tlsxtest.EncodeCertificates(ca.Cert)...)
		}
		tlsxtest.WriteVolume(t, bundleDir, map[string][]byte{"bundle.pem": pem})
	}
	writeBundle(oldCA)
	source := mustLoad(t, f.dir, filepath.Join(bundleDir, "bundle.pem"))
	ts := startServer(t, source)
	reloader := startReloader(t, source, tlsx.ReloaderConfig{PollInterval: time.Hour})

	steps := []struct {
		name         string
		bundle       []*tlsxtest.CA // nil keeps the bundle written above
		oldOK, newOK bool
		reloads      float64 // rotor_tls_reloads_total once the step is loaded
	}{
		{name: "old CA only", bundle: nil, oldOK: true, newOK: false},
		{name: "old and new CA", bundle: []*tlsxtest.CA{oldCA, newCA}, oldOK: true, newOK: true, reloads: 1},
		{name: "new CA only", bundle: []*tlsxtest.CA{newCA}, oldOK: false, newOK: true, reloads: 2},
	}
	for _, step := range steps {
		if step.bundle != nil {
			writeBundle(step.bundle...)
			reloader.waitForCounter(t, "rotor_tls_reloads_total", step.reloads)
		}

		checkAccepted(t, step.name+", client of old CA", ts, oldClient, step.oldOK)
		checkAccepted(t, step.name+", client of new CA", ts, newClient, step.newOK)
	}
}

// checkAccepted runs one handshake with config and checks that the server
// accepts it, or rejects it when wantOK is false.
func checkAccepted(t *testing.T, name string, ts *testServer, config *tls.Config, wantOK bool) {
	t.Helper()

	resp, err := get(t, ts.url, config, true)
	switch {
	case wantOK && err != nil:
		t.Errorf("%s: got handshake error %v, want it accepted", name, err)
	case !wantOK && err == nil:
		t.Errorf("%s: got status %s, want a handshake error", name, resp.Status)
	}
}

func TestReloaderSwapsUnderLoad(t *testing.T) {
	ca := tlsxtest.NewCA(t, "rotor test CA")
	client := ca.IssueClient(t, "spiffe://rotor.example/client/alice")
	dir := t.TempDir()
	first := ca.IssueServer(t, "127.0.0.1")
	tlsxtest.WriteVolume(t, dir, tlsxtest.SecretFiles(t, first, ca))
	source := mustLoad(t, dir, "")
	ts := startServer(t, source)
	reloader := startReloader(t, source, tlsx.ReloaderConfig{PollInterval: time.Hour, Debounce: 5 * time.Millisecond})

	const swaps = 100
	pairs := []*tlsxtest.KeyPair{first}
	for range swaps {
		pairs = append(pairs, ca.IssueServer(t, "127.0.0.1"))
	}
	issued := make(map[string]bool)
	for _, pair := range pairs {
		issued[pair.Cert.SerialNumber.String()] = true
	}

	// Workers send requests for the whole run: three over a new connection
	// each, so that every request runs a handshake, and one over a kept
	// HTTP/2 connection.
	stop := make(chan struct{})
	var requests, failures sync.Map
	var wg sync.WaitGroup
	worker := func(name string, keepAlive bool) {
		transport := &http.Transport{
			TLSClientConfig:   tlsxtest.ClientConfig(t, ca, client),
			ForceAttemptHTTP2: true,
			DisableKeepAlives: !keepAlive,
		}
		defer transport.CloseIdleConnections()
		httpClient := &http.Client{Transport: transport, Timeout: 10 * time.Second}

		// The bound only ends a loop whose stop signal never arrives.
		for i := range 1_000_000 {
			select {
			case <-stop:
				requests.Store(name, i)
				return
			default:
			}
			resp, err := httpClient.Get(ts.url)
			if err != nil {
				failures.Store(name, err)
				t.Errorf("%s: request %d: %v", name, i, err)
				return
			}
			resp.Body.Close()
			if serial := resp.TLS.PeerCertificates[0].SerialNumber.String(); !issued[serial] {
				t.Errorf("%s: served serial %s was never issued", name, serial)
			}
		}
	}
	for i := range 3 {
		wg.Go(func() { worker(fmt.Sprintf("new connections %d", i), false) })
	}
	wg.Go(func() { worker("kept connection", true) })

	for _, pair := range pairs[1:] {
		tlsxtest.WriteVolume(t, dir, tlsxtest.SecretFiles(t, pair, ca))
		waitForSerial(t, ts, ca, client, pair.Cert.SerialNumber)
	}
	close(stop)
	wg.Wait()

	requests.Range(func(name, count any) bool {
		t.Logf("%s: %d requests", name, count)
		return true
	})
	if got := reloader.counter(t, "rotor_tls_reloads_total"); got != swaps {
		t.Errorf("rotor_tls_reloads_total: got %v, want %d", got, swaps)
	}
}

func TestReloaderMetrics(t *testing.T) {
	f := newFixture(t)
	source := mustLoad(t, f.dir, "")
	reloader := startReloader(t, source, tlsx.ReloaderConfig{})

	families, err := reloader.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var expiry float64
	found := false
	for _, family := range families {
		if family.GetName() == "rotor_tls_certificate_expiry_seconds" {
			expiry, found = family.GetMetric()[0].GetGauge().GetValue(), true
		}
	}
	if !found {
		t.Fatal("rotor_tls_certificate_expiry_seconds is not registered")
	}
	if lifetime := time.Until(f.server.Cert.NotAfter).Seconds(); expiry <= 0 || expiry > lifetime+1 {
		t.Errorf("rotor_tls_certificate_expiry_seconds: got %v, want between 0 and %v", expiry, lifetime)
	}
	for _, name := range []string{"rotor_tls_reloads_total", "rotor_tls_reload_failures_total"} {
		if got := reloader.counter(t, name); got != 0 {
			t.Errorf("%s before any change: got %v, want 0", name, got)
		}
	}
}

func TestNewReloaderRejectsInvalidConfig(t *testing.T) {
	f := newFixture(t)
	source := mustLoad(t, f.dir, "")

	tests := []struct {
		name      string
		cfg       tlsx.ReloaderConfig
		wantError string
	}{
		{name: "unknown mode", cfg: tlsx.ReloaderConfig{Mode: "inotify"}, wantError: `invalid watch mode "inotify"`},
		{name: "negative poll interval", cfg: tlsx.ReloaderConfig{PollInterval: -time.Second}, wantError: "poll interval -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Registerer = prometheus.NewRegistry()

			_, err := tlsx.NewReloader(source, tt.cfg)

			assertErrorNames(t, err, tt.wantError)
		})
	}

	t.Run("metrics registered twice", func(t *testing.T) {
		registry := prometheus.NewRegistry()
		if _, err := tlsx.NewReloader(source, tlsx.ReloaderConfig{Registerer: registry}); err != nil {
			t.Fatalf("first NewReloader: %v", err)
		}

		_, err := tlsx.NewReloader(source, tlsx.ReloaderConfig{Registerer: registry})

		assertErrorNames(t, err, "register TLS reloader metrics")
	})
}
