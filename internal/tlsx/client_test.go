package tlsx_test

import (
	"crypto/x509"
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"example.com/rotor/internal/tlsx"
	"example.com/rotor/internal/tlsx/tlsxtest"
)

// clientFixture is a server from newFixture and a client certificate
// directory whose ca.crt is the same CA.
type clientFixture struct {
	fixture
	clientDir string
	ts        *testServer
}

func newClientFixture(t *testing.T) clientFixture {
	t.Helper()

	f := clientFixture{fixture: newFixture(t), clientDir: t.TempDir()}
	tlsxtest.WriteVolume(t, f.clientDir, tlsxtest.SecretFiles(t, f.client, f.ca))
	f.ts = startServer(t, mustLoad(t, f.dir, ""))
	return f
}

func mustLoadClient(t testing.TB, dir string) *tlsx.ClientSource {
	t.Helper()

	source, err := tlsx.LoadClient(dir)
	if err != nil {
		t.Fatalf("LoadClient(%q): %v", dir, err)
	}
	return source
}

// identitySeenByServer sends one request with the client config and returns
// the identity that the server's handler saw.
func identitySeenByServer(t *testing.T, ts *testServer, source *tlsx.ClientSource) string {
	t.Helper()

	resp, err := get(t, ts.url, source.ClientConfig(), true)
	if err != nil {
		t.Fatalf("GET %s: %v", ts.url, err)
	}
	return resp.Header.Get(headerClientIdentity)
}

func TestLoadClientPresentsCertificate(t *testing.T) {
	f := newClientFixture(t)
	source := mustLoadClient(t, f.clientDir)

	if got, want := identitySeenByServer(t, f.ts, source), tlsx.ClientIdentity(f.client.Cert); got != want {
		t.Errorf("identity seen by server: got %q, want %q", got, want)
	}
	assertSerial(t, "Leaf", source.Leaf().SerialNumber, f.client.Cert.SerialNumber)
}

func TestLoadClientRejectsInvalidFiles(t *testing.T) {
	tests := []struct {
		name      string
		corrupt   func(t *testing.T, f clientFixture)
		wantError []string
	}{
		{
			name: "certificate without client auth",
			corrupt: func(t *testing.T, f clientFixture) {
				serverOnly := f.ca.IssueServer(t, "localhost")
				tlsxtest.WriteVolume(t, f.clientDir, tlsxtest.SecretFiles(t, serverOnly, f.ca))
			},
			wantError: []string{"client certificate chain", "incompatible key usage", "valid for client auth"},
		},
		{
			name: "expired certificate",
			corrupt: func(t *testing.T, f clientFixture) {
				expired := f.ca.Issue(t, tlsxtest.Leaf{
					URIs:        []string{"spiffe://rotor.example/client/alice"},
					ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
					NotBefore:   time.Now().Add(-48 * time.Hour),
					NotAfter:    time.Now().Add(-time.Hour),
				})
				tlsxtest.WriteVolume(t, f.clientDir, tlsxtest.SecretFiles(t, expired, f.ca))
			},
			wantError: []string{"client certificate", "expired at"},
		},
		{
			name: "missing ca.crt",
			corrupt: func(t *testing.T, f clientFixture) {
				tlsxtest.WriteVolume(t, f.clientDir, tlsxtest.SecretFiles(t, f.client, nil))
			},
			wantError: []string{tlsx.CAFile, "the CA that signs the server certificate"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newClientFixture(t)
			tt.corrupt(t, f)

			_, err := tlsx.LoadClient(f.clientDir)

			assertErrorNames(t, err, tt.wantError...)
		})
	}
}

func TestLoadClientMissingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")

	_, err := tlsx.LoadClient(dir)

	assertErrorNames(t, err, filepath.Join(dir, tlsx.CertFile), "read client certificate chain")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(%q, fs.ErrNotExist): got false, want true", err)
	}
}

func TestClientReloadChangesPresentedCertificate(t *testing.T) {
	f := newClientFixture(t)
	source := mustLoadClient(t, f.clientDir)
	const renewedIdentity = "spiffe://rotor.example/client/alice-renewed"
	renewed := f.ca.IssueClient(t, renewedIdentity)
	config := source.ClientConfig()

	tlsxtest.WriteVolume(t, f.clientDir, tlsxtest.SecretFiles(t, renewed, f.ca))
	changed, err := source.Reload()

	if err != nil || !changed {
		t.Fatalf("Reload: got changed %t and error %v, want true and nil", changed, err)
	}
	// A config returned before Reload presents the new certificate too.
	resp, err := get(t, f.ts.url, config, true)
	if err != nil {
		t.Fatalf("GET %s: %v", f.ts.url, err)
	}
	if got := resp.Header.Get(headerClientIdentity); got != renewedIdentity {
		t.Errorf("identity seen by server after Reload: got %q, want %q", got, renewedIdentity)
	}
}

func TestClientSourceWithReloader(t *testing.T) {
	f := newClientFixture(t)
	source := mustLoadClient(t, f.clientDir)
	startReloader(t, source, tlsx.ReloaderConfig{PollInterval: time.Hour})
	const renewedIdentity = "spiffe://rotor.example/client/alice-renewed"

	tlsxtest.WriteVolume(t, f.clientDir, tlsxtest.SecretFiles(t, f.ca.IssueClient(t, renewedIdentity), f.ca))

	waitFor(t, "the client to present the renewed certificate", func() bool {
		return identitySeenByServer(t, f.ts, source) == renewedIdentity
	})
}

func TestReloadReportsUnchangedFiles(t *testing.T) {
	f := newFixture(t)
	source := mustLoad(t, f.dir, "")
	leaf := source.Leaf()

	// Writing the same bytes again changes the modification time only.
	tlsxtest.WriteSecretDir(t, f.dir, f.server, f.ca)
	changed, err := source.Reload()

	if err != nil || changed {
		t.Errorf("Reload of unchanged files: got changed %t and error %v, want false and nil", changed, err)
	}
	if source.Leaf() != leaf {
		t.Error("Leaf after Reload of unchanged files: got a new certificate, want the one loaded before")
	}
}

func TestSourceFiles(t *testing.T) {
	f := newFixture(t)
	bundle := filepath.Join(t.TempDir(), "bundle.pem")
	tlsxtest.WriteFile(t, bundle, tlsxtest.EncodeCertificates(f.ca.Cert))
	inDir := []string{
		filepath.Join(f.dir, tlsx.CertFile),
		filepath.Join(f.dir, tlsx.KeyFile),
		filepath.Join(f.dir, tlsx.CAFile),
	}

	tests := []struct {
		name         string
		clientCAFile string
		want         []string
	}{
		{name: "default client CA bundle", want: inDir},
		{name: "separate client CA bundle", clientCAFile: bundle, want: append(slices.Clone(inDir), bundle)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			source := mustLoad(t, f.dir, tt.clientCAFile)

			if got := source.Files(); !slices.Equal(got, tt.want) {
				t.Errorf("Files: got %q, want %q", got, tt.want)
			}
		})
	}
}
