package tlsx

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// loadState reads and checks the files that Load documents and builds the
// server config from them.
func loadState(certDir, clientCAFile string) (*state, error) {
	certPath := filepath.Join(certDir, CertFile)
	keyPath := filepath.Join(certDir, KeyFile)
	now := time.Now()

	pair, intermediates, err := loadKeyPair(certPath, keyPath)
	if err != nil {
		return nil, err
	}
	if err := checkValidity(pair.Leaf, certPath, now); err != nil {
		return nil, err
	}
	if err := verifyChain(pair.Leaf, intermediates, certPath, filepath.Join(certDir, CAFile), now); err != nil {
		return nil, err
	}

	clientCAs, err := loadCertPool(clientCAFile, "client CA bundle")
	if err != nil {
		return nil, err
	}

	return &state{pair: pair, config: newServerTLSConfig(pair, clientCAs)}, nil
}

// loadKeyPair reads the key pair, sets its Leaf and returns the parsed
// intermediates that follow the leaf in certPath.
func loadKeyPair(certPath, keyPath string) (*tls.Certificate, []*x509.Certificate, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, fmt.Errorf("read server certificate chain: %w; check that the certificate Secret is mounted at %s", err, filepath.Dir(certPath))
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("read server private key: %w; check that the certificate Secret is mounted at %s", err, filepath.Dir(keyPath))
	}

	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("invalid server key pair %s and %s: %w; check that %s starts with the certificate for the private key in %s, both PEM-encoded", certPath, keyPath, err, CertFile, KeyFile)
	}

	// X509KeyPair sets Leaf unless GODEBUG=x509keypairleaf=0 is in effect.
	if pair.Leaf == nil {
		pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			return nil, nil, fmt.Errorf("parse leaf certificate in %s: %w; replace the file with a valid PEM chain", certPath, err)
		}
	}

	var intermediates []*x509.Certificate
	for i, der := range pair.Certificate[1:] {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, nil, fmt.Errorf("parse certificate %d in %s: %w; replace the file with a valid PEM chain", i+2, certPath, err)
		}
		intermediates = append(intermediates, cert)
	}
	return &pair, intermediates, nil
}

func checkValidity(leaf *x509.Certificate, certPath string, now time.Time) error {
	if now.After(leaf.NotAfter) {
		return fmt.Errorf("server certificate in %s (serial %X) expired at %s; renew the certificate or check the system clock",
			certPath, leaf.SerialNumber, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return fmt.Errorf("server certificate in %s (serial %X) is not valid before %s; check the system clock",
			certPath, leaf.SerialNumber, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

// verifyChain checks that leaf, with only the given intermediates, verifies
// for server auth to a certificate in caPath. A missing caPath skips the
// check, as Load documents.
func verifyChain(leaf *x509.Certificate, intermediates []*x509.Certificate, certPath, caPath string, now time.Time) error {
	roots, err := loadCertPool(caPath, "CA bundle")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}

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
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if _, err := leaf.Verify(opts); err != nil {
		return fmt.Errorf("server certificate chain in %s does not verify against %s: %w; %s must contain the leaf, valid for server auth, followed by every intermediate up to a CA in %s",
			certPath, caPath, err, CertFile, CAFile)
	}
	return nil
}

// loadCertPool reads a PEM bundle of CA certificates. The error names the
// bundle by kind, and wraps fs.ErrNotExist when path does not exist.
func loadCertPool(path, kind string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w; check the path and that the Secret or ConfigMap is mounted", kind, err)
	}

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
