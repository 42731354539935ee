// Package tlsxtest generates certificate authorities, server certificates and
// client certificates while tests run, and writes them in the cert-manager
// Secret layout that tlsx.Load reads. Every key is ECDSA P-256. Functions
// that can fail take a testing.TB and call its Fatal method instead of
// returning an error.
package tlsxtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"example.com/rotor/internal/secretvolume"
	"example.com/rotor/internal/tlsx"
)

// Validity periods of generated certificates. Certificates start an hour in
// the past so that a peer whose clock is slightly behind, such as a
// container, accepts them.
const (
	caLifetime       = 7 * 24 * time.Hour
	leafLifetime     = 24 * time.Hour
	backdateDuration = time.Hour
)

// CA is a certificate authority for tests: a self-signed root from NewCA or
// an intermediate from NewIntermediate.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey

	// chain is Cert followed by its issuers, ending with the root.
	chain []*x509.Certificate
}

// Leaf describes an end-entity certificate for CA.Issue.
type Leaf struct {
	CommonName  string
	DNSNames    []string
	IPAddresses []net.IP
	URIs        []string // parsed with url.Parse, and an invalid URI fails the test

	// ExtKeyUsage must list at least one usage, usually
	// x509.ExtKeyUsageServerAuth or x509.ExtKeyUsageClientAuth. Go accepts
	// a certificate without extended key usages for any purpose, which would
	// hide a client certificate used as a server certificate.
	ExtKeyUsage []x509.ExtKeyUsage

	NotBefore time.Time // zero means one hour before Issue runs
	NotAfter  time.Time // zero means 24 hours after Issue runs
}

// KeyPair is an issued end-entity certificate with its private key.
type KeyPair struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey

	// Intermediates lists the CA certificates between Cert and the root,
	// issuer first. It is empty when a root issued Cert.
	Intermediates []*x509.Certificate
}

// NewCA creates a self-signed root CA whose subject common name is name.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()

	key := newKey(t)
	template := caTemplate(t, name)
	cert := createCertificate(t, template, template, &key.PublicKey, key)
	return &CA{Cert: cert, Key: key, chain: []*x509.Certificate{cert}}
}

// NewIntermediate creates a CA whose certificate ca signs.
func (ca *CA) NewIntermediate(t testing.TB, name string) *CA {
	t.Helper()

	key := newKey(t)
	cert := createCertificate(t, caTemplate(t, name), ca.Cert, &key.PublicKey, ca.Key)
	chain := append([]*x509.Certificate{cert}, ca.chain...)
	return &CA{Cert: cert, Key: key, chain: chain}
}

// Root returns the self-signed certificate at the top of the CA's chain,
// which is ca.Cert itself for a CA from NewCA.
func (ca *CA) Root() *x509.Certificate {
	return ca.chain[len(ca.chain)-1]
}

// Pool returns a new pool that contains only the root certificate.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Root())
	return pool
}

// Issue creates a certificate for leaf signed by ca.
func (ca *CA) Issue(t testing.TB, leaf Leaf) *KeyPair {
	t.Helper()

	if len(leaf.ExtKeyUsage) == 0 {
		t.Fatalf("tlsxtest: Leaf %q has no ExtKeyUsage; set x509.ExtKeyUsageServerAuth or x509.ExtKeyUsageClientAuth", leaf.CommonName)
	}
	now := time.Now()
	template := &x509.Certificate{
		SerialNumber:          newSerialNumber(t),
		Subject:               pkix.Name{CommonName: leaf.CommonName},
		DNSNames:              leaf.DNSNames,
		IPAddresses:           leaf.IPAddresses,
		URIs:                  parseURIs(t, leaf.URIs),
		NotBefore:             leaf.NotBefore,
		NotAfter:              leaf.NotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           leaf.ExtKeyUsage,
		BasicConstraintsValid: true,
	}
	if template.NotBefore.IsZero() {
		template.NotBefore = now.Add(-backdateDuration)
	}
	if template.NotAfter.IsZero() {
		template.NotAfter = now.Add(leafLifetime)
	}

	key := newKey(t)
	cert := createCertificate(t, template, ca.Cert, &key.PublicKey, ca.Key)
	// The root is left out because servers do not send it and clients
	// already hold it.
	intermediates := slices.Clone(ca.chain[:len(ca.chain)-1])
	return &KeyPair{Cert: cert, Key: key, Intermediates: intermediates}
}

// IssueServer creates a server-auth certificate for hosts signed by ca.
// Hosts that parse as IP addresses become IP SANs, the others DNS SANs, and
// the first host is also the common name.
func (ca *CA) IssueServer(t testing.TB, hosts ...string) *KeyPair {
	t.Helper()

	if len(hosts) == 0 {
		t.Fatal("tlsxtest: IssueServer needs at least one host")
	}
	leaf := Leaf{CommonName: hosts[0], ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, host := range hosts {
		if ip := net.ParseIP(host); ip != nil {
			leaf.IPAddresses = append(leaf.IPAddresses, ip)
		} else {
			leaf.DNSNames = append(leaf.DNSNames, host)
		}
	}
	return ca.Issue(t, leaf)
}

// ChainPEM returns the PEM certificate chain as cert-manager writes tls.crt:
// the leaf followed by the intermediates, without the root.
func (p *KeyPair) ChainPEM() []byte {
	return EncodeCertificates(append([]*x509.Certificate{p.Cert}, p.Intermediates...)...)
}

// KeyPEM returns the private key as a PKCS#8 "PRIVATE KEY" PEM block.
func (p *KeyPair) KeyPEM(t testing.TB) []byte {
	t.Helper()

	der, err := x509.MarshalPKCS8PrivateKey(p.Key)
	if err != nil {
		t.Fatalf("tlsxtest: marshal private key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// TLSCertificate returns the key pair with its chain, ready for
// tls.Config.Certificates.
func (p *KeyPair) TLSCertificate() tls.Certificate {
	chain := [][]byte{p.Cert.Raw}
	for _, cert := range p.Intermediates {
		chain = append(chain, cert.Raw)
	}
	return tls.Certificate{Certificate: chain, PrivateKey: p.Key, Leaf: p.Cert}
}

// EncodeCertificates returns the certificates as consecutive PEM
// "CERTIFICATE" blocks.
func EncodeCertificates(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, cert := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})...)
	}
	return out
}

// WriteSecretDir writes pair into dir in the layout of a cert-manager
// certificate Secret: tls.crt from ChainPEM, tls.key from KeyPEM and ca.crt
// with the root of ca. A nil ca writes no ca.crt. WriteSecretDir creates dir
// when it does not exist and overwrites files that do.
func WriteSecretDir(t testing.TB, dir string, pair *KeyPair, ca *CA) {
	t.Helper()

	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatalf("tlsxtest: create secret directory: %v", err)
	}
	WriteFile(t, filepath.Join(dir, tlsx.CertFile), pair.ChainPEM())
	WriteFile(t, filepath.Join(dir, tlsx.KeyFile), pair.KeyPEM(t))
	if ca != nil {
		WriteFile(t, filepath.Join(dir, tlsx.CAFile), EncodeCertificates(ca.Root()))
	}
}

// SecretFiles returns the files of a cert-manager certificate Secret for
// pair: tls.crt from ChainPEM, tls.key from KeyPEM and, unless ca is nil,
// ca.crt with the root of ca.
func SecretFiles(t testing.TB, pair *KeyPair, ca *CA) map[string][]byte {
	t.Helper()

	files := map[string][]byte{
		tlsx.CertFile: pair.ChainPEM(),
		tlsx.KeyFile:  pair.KeyPEM(t),
	}
	if ca != nil {
		files[tlsx.CAFile] = EncodeCertificates(ca.Root())
	}
	return files
}

// WriteVolume publishes files in dir as the kubelet updates a mounted
// Secret or ConfigMap: in a new timestamped directory behind the ..data
// symlink, swapped in one step (see package secretvolume).
func WriteVolume(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()

	if err := secretvolume.Write(dir, files, secretvolume.Options{Mode: 0o600}); err != nil {
		t.Fatalf("tlsxtest: %v", err)
	}
}

// IssueClient creates a client-auth certificate signed by ca whose URI SAN
// is identity.
func (ca *CA) IssueClient(t testing.TB, identity string) *KeyPair {
	t.Helper()

	return ca.Issue(t, Leaf{
		URIs:        []string{identity},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// WriteFile writes data to path with mode 0600, replacing any existing file.
func WriteFile(t testing.TB, path string, data []byte) {
	t.Helper()

	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("tlsxtest: %v", err)
	}
}

// ClientConfig returns a client config that trusts the root of ca, requires
// TLS 1.2 or later and presents client, or no certificate when client is nil.
// It leaves ServerName and NextProtos empty, so that http.Transport derives
// the server name from the request URL and adds the ALPN protocols it
// supports. Set ForceAttemptHTTP2 on the transport to offer HTTP/2.
func ClientConfig(t testing.TB, ca *CA, client *KeyPair) *tls.Config {
	t.Helper()

	if ca == nil {
		t.Fatal("tlsxtest: ClientConfig needs a CA to trust")
	}
	config := &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    ca.Pool(),
	}
	if client != nil {
		config.Certificates = []tls.Certificate{client.TLSCertificate()}
	}
	return config
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("tlsxtest: generate ECDSA P-256 key: %v", err)
	}
	return key
}

// newSerialNumber returns a random 128-bit serial number, so that
// certificates issued in one test never share a serial.
func newSerialNumber(t testing.TB) *big.Int {
	t.Helper()

	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		t.Fatalf("tlsxtest: generate serial number: %v", err)
	}
	return serial
}

func caTemplate(t testing.TB, name string) *x509.Certificate {
	t.Helper()

	now := time.Now()
	return &x509.Certificate{
		SerialNumber:          newSerialNumber(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-backdateDuration),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
}

func createCertificate(t testing.TB, template, parent *x509.Certificate, publicKey *ecdsa.PublicKey, signer *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()

	der, err := x509.CreateCertificate(rand.Reader, template, parent, publicKey, signer)
	if err != nil {
		t.Fatalf("tlsxtest: create certificate %q: %v", template.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("tlsxtest: parse certificate %q: %v", template.Subject.CommonName, err)
	}
	return cert
}

func parseURIs(t testing.TB, raw []string) []*url.URL {
	t.Helper()

	var uris []*url.URL
	for _, s := range raw {
		uri, err := url.Parse(s)
		if err != nil {
			t.Fatalf("tlsxtest: invalid URI SAN %q: %v", s, err)
		}
		uris = append(uris, uri)
	}
	return uris
}
