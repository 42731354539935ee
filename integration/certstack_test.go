package integration

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"example.com/rotor/internal/provision"
	"example.com/rotor/internal/secretvolume"
	"example.com/rotor/internal/tlsx/tlsxtest"
)

// certWaitTimeout bounds each wait for rotor to pick up new files. It is far
// longer than a reload takes, so that only a reload that never happens
// fails a test.
const certWaitTimeout = 20 * time.Second

// bundleFile is the name of the client trust bundle in its ConfigMap
// directory, as trust-manager might write it.
const bundleFile = "bundle.pem"

// certRotor is a second rotor on the containers of a stack, whose server
// certificate directory and client trust bundle the test controls. The
// embedded stack's rotor and logs are this rotor's, so the stack's helpers
// (baseURL, client, issue) talk to it.
type certRotor struct {
	*stack

	serverDir string // ROTOR_TLS_DIR
	trustDir  string // the directory of ROTOR_CLIENT_CA_FILE

	// probe is a client config that rotor accepts, for reading the served
	// certificate.
	probe *tls.Config
}

// certRotorOptions are the settings that differ between the tests.
type certRotorOptions struct {
	env map[string]string // added to rotor's environment

	// plainFiles writes the server certificate directory as the setup
	// command does, as plain files, instead of in the kubelet's layout.
	plainFiles bool
}

// startCertRotor issues a server certificate from Vault into a new
// directory, writes a trust bundle with Vault's root CA in a directory of
// its own, and starts rotor on s's containers with both. It stops in
// t.Cleanup.
func startCertRotor(t *testing.T, s *stack, opts certRotorOptions) *certRotor {
	t.Helper()

	dir := t.TempDir()
	r := &certRotor{
		stack:     &stack{pg: s.pg, vault: s.vault, root: s.root, rootCA: s.rootCA, logs: &syncBuffer{}},
		serverDir: filepath.Join(dir, "server"),
		trustDir:  filepath.Join(dir, "trust"),
	}
	server := r.issueServer(t)
	if opts.plainFiles {
		if err := server.WriteSecretDir(r.serverDir); err != nil {
			t.Fatal(err)
		}
	} else {
		r.publishServer(t, server)
	}
	r.writeBundle(t, []byte(server.RootCA))

	env := s.rotorEnv(t, r.serverDir)
	env["ROTOR_CLIENT_CA_FILE"] = filepath.Join(r.trustDir, bundleFile)
	for name, value := range opts.env {
		env[name] = value
	}
	r.startRotor(t, env)

	r.probe = r.clientConfig(t, alice)
	return r
}

func (r *certRotor) issueServer(t *testing.T) *provision.Certificate {
	t.Helper()

	return r.issue(t, provision.ServerCertRole, provision.CertificateRequest{
		CommonName: "localhost", DNSNames: []string{"localhost"}, IPs: []string{"127.0.0.1"},
	})
}

// publishServer writes cert into the server directory as the kubelet
// updates a mounted Secret.
func (r *certRotor) publishServer(t *testing.T, cert *provision.Certificate) {
	t.Helper()

	if err := cert.WriteSecretVolume(r.serverDir, secretvolume.Options{Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
}

// writeBundle publishes the client trust bundle as the kubelet updates a
// mounted ConfigMap.
func (r *certRotor) writeBundle(t *testing.T, bundle []byte) {
	t.Helper()

	tlsxtest.WriteVolume(t, r.trustDir, map[string][]byte{bundleFile: bundle})
}

// clientConfig returns a config that trusts Vault's root CA and presents a
// client certificate for identity from Vault's client role.
func (r *certRotor) clientConfig(t *testing.T, identity string) *tls.Config {
	t.Helper()

	cert := r.issue(t, provision.ClientCertRole, provision.CertificateRequest{
		CommonName: "test-client", URIs: []string{identity},
	})
	pair, err := tls.X509KeyPair([]byte(cert.Chain), []byte(cert.Key))
	if err != nil {
		t.Fatalf("load client key pair: %v", err)
	}
	return &tls.Config{RootCAs: r.rootCA, Certificates: []tls.Certificate{pair}}
}

// freshClient returns an HTTP client that opens a new connection, and so
// runs a handshake, for every request. It uses a copy of config, because
// http.Transport adds "h2" to the NextProtos of the config it gets, which
// races with other users of the same config.
func (r *certRotor) freshClient(config *tls.Config) *http.Client {
	client := r.httpClient(config.Clone())
	client.Transport.(*http.Transport).DisableKeepAlives = true
	return client
}

// servedSerial runs one handshake with the probe config and returns the
// serial of the certificate that rotor presented.
func (r *certRotor) servedSerial(t *testing.T) *big.Int {
	t.Helper()

	config := r.probe.Clone()
	config.ServerName = "localhost"
	conn, err := tls.Dial("tcp", "127.0.0.1:"+portOf(r.rotor.APIAddr().String()), config)
	if err != nil {
		t.Fatalf("handshake with rotor: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber
}

// waitForServedSerial runs handshakes until rotor presents the certificate
// with serial want.
func (r *certRotor) waitForServedSerial(t *testing.T, want *big.Int) {
	t.Helper()

	deadline := time.Now().Add(certWaitTimeout)
	for r.servedSerial(t).Cmp(want) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("rotor did not present serial %x within %s", want, certWaitTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// leafSerial returns the serial of the leaf in cert's chain.
func leafSerial(t *testing.T, cert *provision.Certificate) *big.Int {
	t.Helper()

	block, _ := pem.Decode([]byte(cert.Chain))
	if block == nil {
		t.Fatalf("certificate %s: no PEM block in the chain", cert.Serial)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("parse certificate %s: %v", cert.Serial, err)
	}
	return leaf.SerialNumber
}

// logLines returns the lines of rotor's log that contain every part.
func logLines(logs *syncBuffer, parts ...string) []string {
	var lines []string
	for line := range strings.Lines(logs.String()) {
		matches := true
		for _, part := range parts {
			matches = matches && strings.Contains(line, part)
		}
		if matches {
			lines = append(lines, line)
		}
	}
	return lines
}
