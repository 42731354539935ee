package tlsx

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// keyRole selects the checks and the wording of errors for a server key
// pair or a client key pair.
type keyRole struct {
	name  string           // "server" or "client"
	usage x509.ExtKeyUsage // extended key usage that the leaf must allow
}

var (
	serverRole = keyRole{name: "server", usage: x509.ExtKeyUsageServerAuth}
	clientRole = keyRole{name: "client", usage: x509.ExtKeyUsageClientAuth}
)

// certFiles is the content of the files that one load reads, before any
// parsing.
type certFiles struct {
	certPath, keyPath, caPath string
	cert, key                 []byte
	ca                        []byte // nil when caPath does not exist
	caErr                     error  // the error of reading caPath when ca is nil

	// clientCAPath and clientCA are the client CA bundle of a server. A
	// client leaves both empty.
	clientCAPath string
	clientCA     []byte
}

// readCertFiles reads tls.crt, tls.key and ca.crt from certDir. A missing
// ca.crt is not an error here, because only some callers need it.
func readCertFiles(role keyRole, certDir string) (*certFiles, error) {
	f := &certFiles{
		certPath: filepath.Join(certDir, CertFile),
		keyPath:  filepath.Join(certDir, KeyFile),
		caPath:   filepath.Join(certDir, CAFile),
	}

	var err error
	if f.cert, err = os.ReadFile(f.certPath); err != nil {
		return nil, fmt.Errorf("read %s certificate chain: %w; check that the certificate Secret is mounted at %s", role.name, err, certDir)
	}
	if f.key, err = os.ReadFile(f.keyPath); err != nil {
		return nil, fmt.Errorf("read %s private key: %w; check that the certificate Secret is mounted at %s", role.name, err, certDir)
	}

	f.ca, err = os.ReadFile(f.caPath)
	if errors.Is(err, fs.ErrNotExist) {
		f.ca, f.caErr = nil, err
	} else if err != nil {
		return nil, fmt.Errorf("read CA bundle: %w; check the path and that the Secret is mounted", err)
	}
	return f, nil
}

// readServerFiles reads what Load documents: the files of readCertFiles and
// the client CA bundle, which is ca.crt itself when clientCAFile is empty.
func readServerFiles(certDir, clientCAFile string) (*certFiles, error) {
	f, err := readCertFiles(serverRole, certDir)
	if err != nil {
		return nil, err
	}

	if clientCAFile == "" {
		if f.ca == nil {
			return nil, fmt.Errorf("read client CA bundle: %w; check the path and that the Secret or ConfigMap is mounted", f.caErr)
		}
		f.clientCAPath, f.clientCA = f.caPath, f.ca
		return f, nil
	}

	f.clientCAPath = clientCAFile
	if f.clientCA, err = os.ReadFile(clientCAFile); err != nil {
		return nil, fmt.Errorf("read client CA bundle: %w; check the path and that the Secret or ConfigMap is mounted", err)
	}
	return f, nil
}

// fingerprint returns a SHA-256 digest over the content of every file, so
// that a reload can tell whether anything changed without parsing.
func (f *certFiles) fingerprint() [sha256.Size]byte {
	digest := sha256.New()
	for _, content := range [][]byte{f.cert, f.key, f.ca, f.clientCA} {
		// The length prefix keeps the boundaries between files apart, and
		// a missing file (nil) apart from an empty one.
		length := int64(-1)
		if content != nil {
			length = int64(len(content))
		}
		_ = binary.Write(digest, binary.BigEndian, length)
		digest.Write(content)
	}
	return [sha256.Size]byte(digest.Sum(nil))
}

// loadServerState runs the checks that Load documents on files read by
// readServerFiles and builds the server config from them.
func loadServerState(f *certFiles) (*state, error) {
	now := time.Now()

	pair, intermediates, err := parseKeyPair(serverRole, f)
	if err != nil {
		return nil, err
	}
	if err := checkValidity(serverRole, pair.Leaf, f.certPath, now); err != nil {
		return nil, err
	}
	// A missing ca.crt skips the chain check, as Load documents.
	if f.ca != nil {
		roots, err := parseCertPool(f.ca, f.caPath, "CA bundle")
		if err != nil {
			return nil, err
		}
		if err := verifyChain(serverRole, pair.Leaf, intermediates, roots, f.certPath, f.caPath, now); err != nil {
			return nil, err
		}
	}

	clientCAs, err := parseCertPool(f.clientCA, f.clientCAPath, "client CA bundle")
	if err != nil {
		return nil, err
	}

	return &state{
		pair:        pair,
		config:      newServerTLSConfig(pair, clientCAs),
		fingerprint: f.fingerprint(),
	}, nil
}

// parseKeyPair parses the key pair, sets its Leaf and returns the parsed
// intermediates that follow the leaf in tls.crt.
func parseKeyPair(role keyRole, f *certFiles) (*tls.Certificate, []*x509.Certificate, error) {
	pair, err := tls.X509KeyPair(f.cert, f.key)
	if err != nil {
		return nil, nil, fmt.Errorf("invalid %s key pair %s and %s: %w; check that %s starts with the certificate for the private key in %s, both PEM-encoded",
			role.name, f.certPath, f.keyPath, err, CertFile, KeyFile)
	}

	// X509KeyPair sets Leaf unless GODEBUG=x509keypairleaf=0 is in effect.
	if pair.Leaf == nil {
		pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			return nil, nil, fmt.Errorf("parse leaf certificate in %s: %w; replace the file with a valid PEM chain", f.certPath, err)
		}
	}

	var intermediates []*x509.Certificate
	for i, der := range pair.Certificate[1:] {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, nil, fmt.Errorf("parse certificate %d in %s: %w; replace the file with a valid PEM chain", i+2, f.certPath, err)
		}
		intermediates = append(intermediates, cert)
	}
	return &pair, intermediates, nil
}

func checkValidity(role keyRole, leaf *x509.Certificate, certPath string, now time.Time) error {
	if now.After(leaf.NotAfter) {
		return fmt.Errorf("%s certificate in %s (serial %X) expired at %s; renew the certificate or check the system clock",
			role.name, certPath, leaf.SerialNumber, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return fmt.Errorf("%s certificate in %s (serial %X) is not valid before %s; check the system clock",
			role.name, certPath, leaf.SerialNumber, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

// verifyChain checks that leaf, with only the given intermediates, verifies
// for the usage of role to a certificate in roots, which was read from
// caPath.
func verifyChain(role keyRole, leaf *x509.Certificate, intermediates []*x509.Certificate, roots *x509.CertPool, certPath, caPath string, now time.Time) error {
	// A pool built from tls.crt alone keeps Verify from completing the
	// chain from anywhere else, such as the system pool.
	pool := x509.NewCertPool()
	for _, cert := range intermediates {
		pool.AddCert(cert)
	}
	opts := x509.VerifyOptions{
		Roots:         roots,
		Intermediates: pool,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{role.usage},
	}
	if _, err := leaf.Verify(opts); err != nil {
		return fmt.Errorf("%s certificate chain in %s does not verify against %s: %w; %s must contain the leaf, valid for %s auth, followed by every intermediate up to a CA in %s",
			role.name, certPath, caPath, err, CertFile, role.name, CAFile)
	}
	return nil
}

// parseCertPool parses a PEM bundle of CA certificates read from path. The
// error names the bundle by kind.
func parseCertPool(data []byte, path, kind string) (*x509.CertPool, error) {
	certs, err := parseCertificates(data, path, kind)
	if err != nil {
		return nil, err
	}

	pool := x509.NewCertPool()
	for _, cert := range certs {
		pool.AddCert(cert)
	}
	return pool, nil
}

// parseCertificates parses every PEM block in data. Unlike
// x509.CertPool.AppendCertsFromPEM it rejects blocks that do not parse and
// blocks of other types, such as a private key copied into a trust bundle.
func parseCertificates(data []byte, path, kind string) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for index := 1; ; index++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("invalid %s %s: PEM block %d has type %q, want CERTIFICATE; keep only CA certificates in the file", kind, path, index, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("invalid %s %s: parse PEM block %d: %w; replace the block with a valid certificate", kind, path, index, err)
		}
		certs = append(certs, cert)
	}

	if len(certs) == 0 {
		return nil, fmt.Errorf("invalid %s %s: no PEM certificates found; the file must contain at least one CA certificate in PEM form", kind, path)
	}
	return certs, nil
}
