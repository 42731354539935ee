package tlsx_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"example.com/rotor/internal/tlsx"
	"example.com/rotor/internal/tlsx/tlsxtest"
)

// Response headers that the test handler sets from what the server saw.
const (
	headerClientIdentity = "X-Client-Identity"
	headerProtoMajor     = "X-Proto-Major"
)

// fixture is a CA with a server key pair written to a Secret directory and a
// client certificate from the same CA.
type fixture struct {
	ca     *tlsxtest.CA
	server *tlsxtest.KeyPair
	client *tlsxtest.KeyPair
	dir    string
}

func newFixture(t testing.TB) fixture {
	t.Helper()

	ca := tlsxtest.NewCA(t, "rotor test CA")
	f := fixture{
		ca:     ca,
		server: ca.IssueServer(t, "localhost", "127.0.0.1"),
		client: issueClient(t, ca, "spiffe://rotor.example/client/alice"),
		dir:    t.TempDir(),
	}
	tlsxtest.WriteSecretDir(t, f.dir, f.server, f.ca)
	return f
}

func issueClient(t testing.TB, ca *tlsxtest.CA, uri string) *tlsxtest.KeyPair {
	t.Helper()

	return ca.Issue(t, tlsxtest.Leaf{
		URIs:        []string{uri},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

func mustLoad(t testing.TB, certDir, clientCAFile string) *tlsx.Source {
	t.Helper()

	source, err := tlsx.Load(certDir, clientCAFile)
	if err != nil {
		t.Fatalf("Load(%q, %q): %v", certDir, clientCAFile, err)
	}
	return source
}

// testServer is an HTTPS server on 127.0.0.1 that uses Source.ServerConfig.
type testServer struct {
	url string
	// requests counts the requests that reached the handler, which only
	// happens after a successful handshake.
	requests atomic.Int64
}

func startServer(t testing.TB, source *tlsx.Source) *testServer {
	t.Helper()

	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on 127.0.0.1: %v", err)
	}
	ts := &testServer{url: "https://" + listener.Addr().String() + "/"}

	server := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ts.requests.Add(1)
			w.Header().Set(headerClientIdentity, tlsx.ClientIdentity(r.TLS.PeerCertificates[0]))
			w.Header().Set(headerProtoMajor, strconv.Itoa(r.ProtoMajor))
		}),
		TLSConfig:         source.ServerConfig(),
		ReadHeaderTimeout: 5 * time.Second,
		// Rejected handshakes are expected in these tests, and the client
		// side reports them.
		ErrorLog: log.New(io.Discard, "", 0),
	}

	served := make(chan error, 1)
	go func() { served <- server.ServeTLS(listener, "", "") }()
	t.Cleanup(func() {
		if err := server.Close(); err != nil {
			t.Errorf("close server: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("ServeTLS: got %v, want %v", err, http.ErrServerClosed)
		}
	})
	return ts
}

// get sends one request over a new connection, so that every call runs a
// handshake, and returns the response with its body read and closed. It is
// safe to call from goroutines other than the test's.
func get(t testing.TB, url string, config *tls.Config, forceHTTP2 bool) (*http.Response, error) {
	t.Helper()

	transport := &http.Transport{
		TLSClientConfig:   config,
		ForceAttemptHTTP2: forceHTTP2,
		DisableKeepAlives: true,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}

	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return nil, err
	}
	return resp, nil
}

// servedSerial returns the serial of the leaf that the server presented to a
// client that trusts ca and presents client.
func servedSerial(t testing.TB, ts *testServer, ca *tlsxtest.CA, client *tlsxtest.KeyPair) *big.Int {
	t.Helper()

	resp, err := get(t, ts.url, tlsxtest.ClientConfig(t, ca, client), true)
	if err != nil {
		t.Fatalf("GET %s: %v", ts.url, err)
	}
	return resp.TLS.PeerCertificates[0].SerialNumber
}

func assertSerial(t testing.TB, certificateName string, got, want *big.Int) {
	t.Helper()

	if got.Cmp(want) != 0 {
		t.Errorf("%s serial: got %s, want %s", certificateName, got, want)
	}
}

// assertErrorNames fails unless err is non-nil and its message contains
// every part.
func assertErrorNames(t testing.TB, err error, parts ...string) {
	t.Helper()

	if err == nil {
		t.Fatalf("got nil error, want one containing %q", parts)
	}
	t.Logf("error: %v", err)
	for _, part := range parts {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q: want it to contain %q", err, part)
		}
	}
}

func TestLoadServesMutualTLS(t *testing.T) {
	f := newFixture(t)
	source := mustLoad(t, f.dir, "")
	ts := startServer(t, source)

	otherCA := tlsxtest.NewCA(t, "other CA")
	serverAuthOnly := f.ca.Issue(t, tlsxtest.Leaf{
		CommonName:  "server-auth-only",
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})

	tests := []struct {
		name   string
		client *tlsxtest.KeyPair
		wantOK bool
	}{
		{name: "client from trusted CA", client: f.client, wantOK: true},
		{name: "no client certificate", client: nil},
		{name: "client from other CA", client: issueClient(t, otherCA, "spiffe://rotor.example/client/mallory")},
		{name: "certificate without client auth usage", client: serverAuthOnly},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := ts.requests.Load()
			resp, err := get(t, ts.url, tlsxtest.ClientConfig(t, f.ca, tt.client), true)

			if !tt.wantOK {
				if err == nil {
					t.Fatalf("GET succeeded with status %s, want a handshake error", resp.Status)
				}
				if got := ts.requests.Load() - before; got != 0 {
					t.Errorf("handler requests: got %d, want 0", got)
				}
				return
			}

			if err != nil {
				t.Fatalf("GET %s: %v", ts.url, err)
			}
			if got, want := resp.Header.Get(headerClientIdentity), tlsx.ClientIdentity(tt.client.Cert); got != want {
				t.Errorf("client identity seen by handler: got %q, want %q", got, want)
			}
			assertSerial(t, "served leaf", resp.TLS.PeerCertificates[0].SerialNumber, f.server.Cert.SerialNumber)
		})
	}
}

func TestLoadSetsLeaf(t *testing.T) {
	f := newFixture(t)
	source := mustLoad(t, f.dir, "")

	leaf := source.Leaf()
	assertSerial(t, "Leaf", leaf.SerialNumber, f.server.Cert.SerialNumber)
	if got, want := leaf.Subject.CommonName, f.server.Cert.Subject.CommonName; got != want {
		t.Errorf("Leaf subject CN: got %q, want %q", got, want)
	}
	if got, want := leaf.NotAfter, f.server.Cert.NotAfter; !got.Equal(want) {
		t.Errorf("Leaf NotAfter: got %v, want %v", got, want)
	}
}

func TestServerConfigProtocols(t *testing.T) {
	f := newFixture(t)
	ts := startServer(t, mustLoad(t, f.dir, ""))

	tests := []struct {
		name           string
		forceHTTP2     bool
		wantProto      string
		wantProtoMajor string
	}{
		{name: "HTTP/2 client", forceHTTP2: true, wantProto: "HTTP/2.0", wantProtoMajor: "2"},
		{name: "HTTP/1.1 client", forceHTTP2: false, wantProto: "HTTP/1.1", wantProtoMajor: "1"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := get(t, ts.url, tlsxtest.ClientConfig(t, f.ca, f.client), tt.forceHTTP2)
			if err != nil {
				t.Fatalf("GET %s: %v", ts.url, err)
			}

			if resp.Proto != tt.wantProto {
				t.Errorf("response Proto: got %q, want %q", resp.Proto, tt.wantProto)
			}
			if got := resp.Header.Get(headerProtoMajor); got != tt.wantProtoMajor {
				t.Errorf("request ProtoMajor seen by handler: got %s, want %s", got, tt.wantProtoMajor)
			}
		})
	}
}

func TestServerConfigRejectsTLS11(t *testing.T) {
	f := newFixture(t)
	ts := startServer(t, mustLoad(t, f.dir, ""))

	config := tlsxtest.ClientConfig(t, f.ca, f.client)
	config.MinVersion = tls.VersionTLS10
	config.MaxVersion = tls.VersionTLS11

	if resp, err := get(t, ts.url, config, true); err == nil {
		t.Fatalf("GET with TLS 1.1 succeeded with status %s, want a handshake error", resp.Status)
	}
}

func TestLoadServesIntermediate(t *testing.T) {
	root := tlsxtest.NewCA(t, "root CA")
	intermediate := root.NewIntermediate(t, "intermediate CA")
	server := intermediate.IssueServer(t, "localhost", "127.0.0.1")
	dir := t.TempDir()
	tlsxtest.WriteSecretDir(t, dir, server, root)

	ts := startServer(t, mustLoad(t, dir, ""))
	client := issueClient(t, root, "spiffe://rotor.example/client/alice")

	// The client trusts only the root, so the handshake succeeds only if the
	// server sends the intermediate from tls.crt.
	resp, err := get(t, ts.url, tlsxtest.ClientConfig(t, root, client), true)
	if err != nil {
		t.Fatalf("GET %s: %v", ts.url, err)
	}
	if got := len(resp.TLS.PeerCertificates); got != 2 {
		t.Errorf("certificates sent by server: got %d, want 2 (leaf and intermediate)", got)
	}
}

func TestLoadRejectsMissingIntermediate(t *testing.T) {
	root := tlsxtest.NewCA(t, "root CA")
	intermediate := root.NewIntermediate(t, "intermediate CA")
	server := intermediate.IssueServer(t, "localhost")
	dir := t.TempDir()
	tlsxtest.WriteSecretDir(t, dir, server, root)
	certPath := filepath.Join(dir, tlsx.CertFile)
	tlsxtest.WriteFile(t, certPath, tlsxtest.EncodeCertificates(server.Cert))

	_, err := tlsx.Load(dir, "")

	assertErrorNames(t, err, certPath, filepath.Join(dir, tlsx.CAFile), "does not verify")
	var unknownAuthority x509.UnknownAuthorityError
	if !errors.As(err, &unknownAuthority) {
		t.Errorf("errors.As(%q, *x509.UnknownAuthorityError): got false, want true", err)
	}
}

func TestLoadRejectsMismatchedKey(t *testing.T) {
	f := newFixture(t)
	other := f.ca.IssueServer(t, "localhost")
	keyPath := filepath.Join(f.dir, tlsx.KeyFile)
	tlsxtest.WriteFile(t, keyPath, other.KeyPEM(t))

	_, err := tlsx.Load(f.dir, "")

	assertErrorNames(t, err, filepath.Join(f.dir, tlsx.CertFile), keyPath, "private key does not match public key")
}

func TestLoadRejectsCAFileOfOtherIssuer(t *testing.T) {
	f := newFixture(t)
	other := tlsxtest.NewCA(t, "other CA")
	caPath := filepath.Join(f.dir, tlsx.CAFile)
	tlsxtest.WriteFile(t, caPath, tlsxtest.EncodeCertificates(other.Cert))

	_, err := tlsx.Load(f.dir, "")

	assertErrorNames(t, err, filepath.Join(f.dir, tlsx.CertFile), caPath, "does not verify")
}

func TestLoadRejectsLeafWithoutServerAuth(t *testing.T) {
	f := newFixture(t)
	clientOnly := f.ca.Issue(t, tlsxtest.Leaf{
		DNSNames:    []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	tlsxtest.WriteSecretDir(t, f.dir, clientOnly, f.ca)

	_, err := tlsx.Load(f.dir, "")

	assertErrorNames(t, err, filepath.Join(f.dir, tlsx.CertFile), "does not verify", "incompatible key usage")
}

func TestLoadRejectsInvalidValidity(t *testing.T) {
	now := time.Now()
	serverAuth := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	expired := tlsxtest.Leaf{
		CommonName:  "localhost",
		DNSNames:    []string{"localhost"},
		ExtKeyUsage: serverAuth,
		NotBefore:   now.Add(-48 * time.Hour),
		NotAfter:    now.Add(-24 * time.Hour),
	}
	notYetValid := tlsxtest.Leaf{
		CommonName:  "localhost",
		DNSNames:    []string{"localhost"},
		ExtKeyUsage: serverAuth,
		NotBefore:   now.Add(24 * time.Hour),
		NotAfter:    now.Add(48 * time.Hour),
	}

	tests := []struct {
		name      string
		leaf      tlsxtest.Leaf
		writeCA   bool // false writes no ca.crt and passes a separate client CA bundle
		wantError string
	}{
		{name: "expired with ca.crt", leaf: expired, writeCA: true, wantError: "expired at"},
		{name: "expired without ca.crt", leaf: expired, writeCA: false, wantError: "expired at"},
		{name: "not yet valid with ca.crt", leaf: notYetValid, writeCA: true, wantError: "not valid before"},
		{name: "not yet valid without ca.crt", leaf: notYetValid, writeCA: false, wantError: "not valid before"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := tlsxtest.NewCA(t, "rotor test CA")
			pair := ca.Issue(t, tt.leaf)
			dir := t.TempDir()
			clientCAFile := ""
			if tt.writeCA {
				tlsxtest.WriteSecretDir(t, dir, pair, ca)
			} else {
				tlsxtest.WriteSecretDir(t, dir, pair, nil)
				clientCAFile = filepath.Join(t.TempDir(), "client-ca.crt")
				tlsxtest.WriteFile(t, clientCAFile, tlsxtest.EncodeCertificates(ca.Cert))
			}

			_, err := tlsx.Load(dir, clientCAFile)

			assertErrorNames(t, err, filepath.Join(dir, tlsx.CertFile), tt.wantError, fmt.Sprintf("%X", pair.Cert.SerialNumber))
		})
	}
}

func TestLoadRejectsMissingFile(t *testing.T) {
	tests := []struct {
		name         string
		remove       string // file in the Secret directory to delete, if any
		clientCAFile string // relative to a temporary directory, if set
		wantPath     string // relative to the Secret directory, or to the temporary directory when clientCAFile is set
	}{
		{name: "tls.crt", remove: tlsx.CertFile, wantPath: tlsx.CertFile},
		{name: "tls.key", remove: tlsx.KeyFile, wantPath: tlsx.KeyFile},
		{name: "default client CA bundle", remove: tlsx.CAFile, wantPath: tlsx.CAFile},
		{name: "separate client CA bundle", clientCAFile: "missing-ca.crt", wantPath: "missing-ca.crt"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			wantPath := filepath.Join(f.dir, tt.wantPath)
			clientCAFile := ""
			if tt.clientCAFile != "" {
				other := t.TempDir()
				clientCAFile = filepath.Join(other, tt.clientCAFile)
				wantPath = filepath.Join(other, tt.wantPath)
			}
			if tt.remove != "" {
				if err := os.Remove(filepath.Join(f.dir, tt.remove)); err != nil {
					t.Fatal(err)
				}
			}

			_, err := tlsx.Load(f.dir, clientCAFile)

			assertErrorNames(t, err, wantPath)
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("errors.Is(%q, fs.ErrNotExist): got false, want true", err)
			}
		})
	}
}

func TestLoadRejectsInvalidCABundle(t *testing.T) {
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("not a key")})
	corruptCertificate := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")})

	tests := []struct {
		name      string
		contents  []byte
		wantError string
	}{
		{name: "empty", contents: nil, wantError: "no PEM certificates"},
		{name: "garbage", contents: []byte("this is not PEM\n"), wantError: "no PEM certificates"},
		{name: "private key block", contents: keyPEM, wantError: `PEM block 1 has type "PRIVATE KEY"`},
		{name: "corrupt certificate", contents: corruptCertificate, wantError: "parse PEM block 1"},
	}

	for _, tt := range tests {
		t.Run(tt.name+" separate bundle", func(t *testing.T) {
			f := newFixture(t)
			clientCAFile := filepath.Join(t.TempDir(), "client-ca.crt")
			tlsxtest.WriteFile(t, clientCAFile, tt.contents)

			_, err := tlsx.Load(f.dir, clientCAFile)

			assertErrorNames(t, err, "client CA bundle", clientCAFile, tt.wantError)
		})

		t.Run(tt.name+" ca.crt", func(t *testing.T) {
			f := newFixture(t)
			caPath := filepath.Join(f.dir, tlsx.CAFile)
			tlsxtest.WriteFile(t, caPath, tt.contents)

			_, err := tlsx.Load(f.dir, "")

			assertErrorNames(t, err, caPath, tt.wantError)
		})
	}
}

func TestLoadSeparateClientCABundle(t *testing.T) {
	f := newFixture(t)
	clientCA := tlsxtest.NewCA(t, "client CA")
	clientCAFile := filepath.Join(t.TempDir(), "client-ca.crt")
	tlsxtest.WriteFile(t, clientCAFile, tlsxtest.EncodeCertificates(clientCA.Cert))
	ts := startServer(t, mustLoad(t, f.dir, clientCAFile))

	t.Run("client from bundle CA", func(t *testing.T) {
		client := issueClient(t, clientCA, "spiffe://rotor.example/client/bob")
		if _, err := get(t, ts.url, tlsxtest.ClientConfig(t, f.ca, client), true); err != nil {
			t.Errorf("GET %s: %v", ts.url, err)
		}
	})

	t.Run("client from ca.crt CA", func(t *testing.T) {
		if resp, err := get(t, ts.url, tlsxtest.ClientConfig(t, f.ca, f.client), true); err == nil {
			t.Errorf("GET succeeded with status %s, want a handshake error", resp.Status)
		}
	})
}

func TestLoadWithoutCAFileSkipsChainCheck(t *testing.T) {
	root := tlsxtest.NewCA(t, "root CA")
	intermediate := root.NewIntermediate(t, "intermediate CA")
	server := intermediate.IssueServer(t, "localhost")
	dir := t.TempDir()
	tlsxtest.WriteSecretDir(t, dir, server, nil)
	// Without ca.crt nothing can show that this chain lacks the intermediate.
	tlsxtest.WriteFile(t, filepath.Join(dir, tlsx.CertFile), tlsxtest.EncodeCertificates(server.Cert))
	clientCAFile := filepath.Join(t.TempDir(), "client-ca.crt")
	tlsxtest.WriteFile(t, clientCAFile, tlsxtest.EncodeCertificates(root.Cert))

	source := mustLoad(t, dir, clientCAFile)

	assertSerial(t, "Leaf", source.Leaf().SerialNumber, server.Cert.SerialNumber)
}

func TestLoadAcceptsSEC1Key(t *testing.T) {
	f := newFixture(t)
	der, err := x509.MarshalECPrivateKey(f.server.Key)
	if err != nil {
		t.Fatal(err)
	}
	tlsxtest.WriteFile(t, filepath.Join(f.dir, tlsx.KeyFile), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))

	ts := startServer(t, mustLoad(t, f.dir, ""))

	assertSerial(t, "served leaf", servedSerial(t, ts, f.ca, f.client), f.server.Cert.SerialNumber)
}

func TestReloadSwapsKeyPair(t *testing.T) {
	f := newFixture(t)
	source := mustLoad(t, f.dir, "")
	ts := startServer(t, source)
	assertSerial(t, "served leaf before Reload", servedSerial(t, ts, f.ca, f.client), f.server.Cert.SerialNumber)

	renewed := f.ca.IssueServer(t, "localhost", "127.0.0.1")
	tlsxtest.WriteSecretDir(t, f.dir, renewed, f.ca)
	if _, err := source.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}

	assertSerial(t, "Leaf after Reload", source.Leaf().SerialNumber, renewed.Cert.SerialNumber)
	assertSerial(t, "served leaf after Reload", servedSerial(t, ts, f.ca, f.client), renewed.Cert.SerialNumber)
}

func TestReloadKeepsStateOnError(t *testing.T) {
	tests := []struct {
		name      string
		corrupt   func(t *testing.T, f fixture)
		wantError string
	}{
		{
			name: "mismatched key",
			corrupt: func(t *testing.T, f fixture) {
				renewed := f.ca.IssueServer(t, "localhost", "127.0.0.1")
				tlsxtest.WriteFile(t, filepath.Join(f.dir, tlsx.CertFile), renewed.ChainPEM())
			},
			wantError: "private key does not match public key",
		},
		{
			name: "expired leaf",
			corrupt: func(t *testing.T, f fixture) {
				expired := f.ca.Issue(t, tlsxtest.Leaf{
					IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
					ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
					NotBefore:   time.Now().Add(-48 * time.Hour),
					NotAfter:    time.Now().Add(-time.Hour),
				})
				tlsxtest.WriteSecretDir(t, f.dir, expired, f.ca)
			},
			wantError: "expired at",
		},
		{
			name: "missing key",
			corrupt: func(t *testing.T, f fixture) {
				if err := os.Remove(filepath.Join(f.dir, tlsx.KeyFile)); err != nil {
					t.Fatal(err)
				}
			},
			wantError: tlsx.KeyFile,
		},
		{
			name: "garbage client CA bundle",
			corrupt: func(t *testing.T, f fixture) {
				tlsxtest.WriteFile(t, filepath.Join(f.dir, tlsx.CAFile), []byte("garbage"))
			},
			wantError: "no PEM certificates",
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			source := mustLoad(t, f.dir, "")
			ts := startServer(t, source)

			tt.corrupt(t, f)
			_, err := source.Reload()

			assertErrorNames(t, err, tt.wantError)
			assertSerial(t, "Leaf after failed Reload", source.Leaf().SerialNumber, f.server.Cert.SerialNumber)
			// The handshake also proves that the old client CA pool still
			// accepts the client.
			assertSerial(t, "served leaf after failed Reload", servedSerial(t, ts, f.ca, f.client), f.server.Cert.SerialNumber)
		})
	}
}

func TestReloadReplacesClientCAs(t *testing.T) {
	f := newFixture(t)
	oldCA := tlsxtest.NewCA(t, "old client CA")
	newCA := tlsxtest.NewCA(t, "new client CA")
	clientCAFile := filepath.Join(t.TempDir(), "client-ca.crt")
	tlsxtest.WriteFile(t, clientCAFile, tlsxtest.EncodeCertificates(oldCA.Cert))
	source := mustLoad(t, f.dir, clientCAFile)
	ts := startServer(t, source)

	// The shared session cache lets the old client resume its TLS session,
	// which must not bypass the new client CA pool.
	oldClient := tlsxtest.ClientConfig(t, f.ca, issueClient(t, oldCA, "spiffe://rotor.example/client/old"))
	oldClient.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	if _, err := get(t, ts.url, oldClient, true); err != nil {
		t.Fatalf("GET with old client before Reload: %v", err)
	}
	resp, err := get(t, ts.url, oldClient, true)
	if err != nil {
		t.Fatalf("second GET with old client before Reload: %v", err)
	}
	if !resp.TLS.DidResume {
		t.Fatal("second connection of old client did not resume its session, so this test cannot check resumption after Reload")
	}

	tlsxtest.WriteFile(t, clientCAFile, tlsxtest.EncodeCertificates(newCA.Cert))
	if _, err := source.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}

	if resp, err := get(t, ts.url, oldClient, true); err == nil {
		t.Errorf("GET with old client after Reload succeeded (resumed: %t), want a handshake error", resp.TLS.DidResume)
	}
	newClient := tlsxtest.ClientConfig(t, f.ca, issueClient(t, newCA, "spiffe://rotor.example/client/new"))
	if _, err := get(t, ts.url, newClient, true); err != nil {
		t.Errorf("GET with new client after Reload: %v", err)
	}
}

func TestReloadDuringHandshakes(t *testing.T) {
	f := newFixture(t)
	source := mustLoad(t, f.dir, "")
	ts := startServer(t, source)
	renewed := f.ca.IssueServer(t, "localhost", "127.0.0.1")
	pairs := []*tlsxtest.KeyPair{f.server, renewed}

	const workers, requestsPerWorker, reloads = 4, 10, 20
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range requestsPerWorker {
				resp, err := get(t, ts.url, tlsxtest.ClientConfig(t, f.ca, f.client), true)
				if err != nil {
					t.Errorf("GET during Reload: %v", err)
					return
				}
				serial := resp.TLS.PeerCertificates[0].SerialNumber
				if serial.Cmp(f.server.Cert.SerialNumber) != 0 && serial.Cmp(renewed.Cert.SerialNumber) != 0 {
					t.Errorf("served leaf serial: got %s, want %s or %s", serial, f.server.Cert.SerialNumber, renewed.Cert.SerialNumber)
				}
			}
		})
	}

	for i := range reloads {
		tlsxtest.WriteSecretDir(t, f.dir, pairs[i%len(pairs)], f.ca)
		if _, err := source.Reload(); err != nil {
			t.Errorf("Reload %d: %v", i, err)
		}
	}
	wg.Wait()
}
