package tlsx

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// ClientSource holds a client key pair and the CA pool that verifies
// servers, loaded from a directory in the same cert-manager layout as
// Source. Create it with LoadClient, because the methods of the zero value
// panic. A ClientSource is safe for concurrent use.
type ClientSource struct {
	certDir string

	// reloadMu serializes Reload, so that the call that reads the files last
	// is also the one that stores its state last.
	reloadMu sync.Mutex
	current  atomic.Pointer[clientState]
}

// clientState is the result of one successful load. It is never modified
// after loadClientState returns.
type clientState struct {
	pair        *tls.Certificate // Leaf is always set
	roots       *x509.CertPool   // CAs trusted to sign the server's certificate
	fingerprint [sha256.Size]byte
}

// LoadClient reads the client key pair from certDir/tls.crt and
// certDir/tls.key and the CA bundle from certDir/ca.crt. It returns an error
// that names the file and the likely fix unless all of these checks pass:
//
//   - tls.key is the private key of the first certificate in tls.crt, and every
//     certificate in tls.crt parses.
//   - The leaf is valid now.
//   - The leaf verifies for client auth to a certificate in ca.crt using only
//     the intermediates in tls.crt. A leaf without the client auth extended
//     key usage fails here rather than at every handshake.
//
// ca.crt serves twice: it checks the client's own chain, and it is the pool
// of CAs that the client trusts to sign the server's certificate. That fits
// rotor, whose server and client certificates come from one PKI.
func LoadClient(certDir string) (*ClientSource, error) {
	c := &ClientSource{certDir: certDir}

	files, err := readCertFiles(clientRole, certDir)
	if err != nil {
		return nil, err
	}
	loaded, err := loadClientState(files)
	if err != nil {
		return nil, err
	}
	c.current.Store(loaded)
	return c, nil
}

// Reload reads the files of LoadClient again. Like Source.Reload, it
// returns changed == false without parsing when their content is that of the
// state in use, and otherwise replaces the key pair and the CA pool together
// only when every check of LoadClient passes. On error it keeps the current
// state.
func (c *ClientSource) Reload() (changed bool, err error) {
	c.reloadMu.Lock()
	defer c.reloadMu.Unlock()

	files, err := readCertFiles(clientRole, c.certDir)
	if err != nil {
		return false, err
	}
	if files.fingerprint() == c.current.Load().fingerprint {
		return false, nil
	}
	loaded, err := loadClientState(files)
	if err != nil {
		return false, err
	}
	c.current.Store(loaded)
	return true, nil
}

// ClientConfig returns a new client config that requires TLS 1.2 or later,
// presents the client certificate in use at each handshake through
// GetClientCertificate, so that it follows Reload, and trusts the CA pool
// in use when ClientConfig is called.
//
// NOTE: RootCAs is not reloaded, because tls.Config has no hook that picks
// the pool per handshake without turning off Go's own verification. A
// long-running client calls ClientConfig again, for example for each new
// http.Transport, to pick up a new server CA.
func (c *ClientSource) ClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    c.current.Load().roots,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return c.current.Load().pair, nil
		},
	}
}

// Leaf returns the parsed client certificate that new handshakes present.
// Callers must not modify it.
func (c *ClientSource) Leaf() *x509.Certificate {
	return c.current.Load().pair.Leaf
}

// Files returns the paths that LoadClient and Reload read: tls.crt, tls.key
// and ca.crt in the certificate directory.
func (c *ClientSource) Files() []string {
	return []string{
		filepath.Join(c.certDir, CertFile),
		filepath.Join(c.certDir, KeyFile),
		filepath.Join(c.certDir, CAFile),
	}
}

func loadClientState(f *certFiles) (*clientState, error) {
	now := time.Now()

	pair, intermediates, err := parseKeyPair(clientRole, f)
	if err != nil {
		return nil, err
	}
	if err := checkValidity(clientRole, pair.Leaf, f.certPath, now); err != nil {
		return nil, err
	}
	if f.ca == nil {
		return nil, fmt.Errorf("read CA bundle: %w; a client needs %s with the CA that signs the server certificate", f.caErr, CAFile)
	}
	roots, err := parseCertPool(f.ca, f.caPath, "CA bundle")
	if err != nil {
		return nil, err
	}
	if err := verifyChain(clientRole, pair.Leaf, intermediates, roots, f.certPath, f.caPath, now); err != nil {
		return nil, err
	}

	return &clientState{pair: pair, roots: roots, fingerprint: f.fingerprint()}, nil
}
