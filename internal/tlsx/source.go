package tlsx

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// File names in a cert-manager certificate Secret mounted as a directory.
const (
	CertFile = "tls.crt" // PEM leaf certificate followed by its intermediates
	KeyFile  = "tls.key" // PEM private key of the leaf (PKCS#1, SEC 1 or PKCS#8)
	CAFile   = "ca.crt"  // PEM CA certificates that the chain in tls.crt leads to
)

// Source holds the server key pair and the client CA pool loaded from one
// certificate directory. Create it with Load, because the methods of the
// zero value panic. A Source is safe for concurrent use, and handshakes read
// the current state without locking while Reload runs.
type Source struct {
	certDir      string
	clientCAFile string // "" means ca.crt in certDir

	// reloadMu serializes Reload, so that the call that reads the files last
	// is also the one that stores its state last.
	reloadMu sync.Mutex
	current  atomic.Pointer[state]
}

// state is the result of one successful load. It is never modified after
// loadState returns, so any number of handshakes can share it.
type state struct {
	pair        *tls.Certificate // Leaf is always set
	config      *tls.Config      // server config for handshakes that start while this state is current
	fingerprint [sha256.Size]byte
}

// Load reads the server key pair from certDir/tls.crt and certDir/tls.key and
// the client CA bundle from clientCAFile, which defaults to certDir/ca.crt
// when empty. Load returns an error that names the file and the likely fix
// unless all of these checks pass:
//
//   - tls.key is the private key of the first certificate in tls.crt, and every
//     certificate in tls.crt parses.
//   - The leaf is valid now: not before its NotBefore and not after its NotAfter.
//   - When certDir/ca.crt exists, the leaf verifies for server auth to a
//     certificate in ca.crt using only the intermediates in tls.crt. Go treats
//     every certificate in ca.crt as a trust anchor, so when ca.crt holds an
//     intermediate this check cannot detect missing certificates above it.
//     When ca.crt does not exist the check is skipped. That can only happen
//     with a separate clientCAFile, because the default client bundle is
//     ca.crt itself.
//   - The client CA bundle contains at least one PEM certificate and no other
//     PEM block types.
func Load(certDir, clientCAFile string) (*Source, error) {
	s := &Source{certDir: certDir, clientCAFile: clientCAFile}

	files, err := readServerFiles(certDir, clientCAFile)
	if err != nil {
		return nil, err
	}
	loaded, err := loadServerState(files)
	if err != nil {
		return nil, err
	}
	s.current.Store(loaded)
	return s, nil
}

// Reload reads the same files as Load again. When their content is the
// same as that of the state in use, it returns changed == false and a nil
// error without parsing them. Otherwise it runs the checks of Load, and only
// when all of them pass does it replace the key pair and the client CA pool,
// both at once, for the handshakes that start afterwards, and return
// changed == true. On error it keeps the current state and returns the
// error. Established connections keep the certificates they negotiated. A
// client that resumes a TLS session after Reload must still have a
// certificate that verifies against the new client CA pool, because
// crypto/tls (Go 1.26) checks resumed sessions against the config that
// GetConfigForClient returns.
//
// A file read while cert-manager rewrites the Secret can pair a new
// certificate with an old key. Reload then fails the key pair check, and a
// later call succeeds once the files are consistent. A Reloader makes those
// later calls.
func (s *Source) Reload() (changed bool, err error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()

	files, err := readServerFiles(s.certDir, s.clientCAFile)
	if err != nil {
		return false, err
	}
	if files.fingerprint() == s.current.Load().fingerprint {
		return false, nil
	}
	loaded, err := loadServerState(files)
	if err != nil {
		return false, err
	}
	s.current.Store(loaded)
	return true, nil
}

// Files returns the paths that Load and Reload read: tls.crt, tls.key and
// ca.crt in the certificate directory, followed by the client CA bundle
// when it is a separate file.
func (s *Source) Files() []string {
	files := []string{
		filepath.Join(s.certDir, CertFile),
		filepath.Join(s.certDir, KeyFile),
		filepath.Join(s.certDir, CAFile),
	}
	if s.clientCAFile != "" {
		files = append(files, s.clientCAFile)
	}
	return files
}

// ServerConfig returns a new server config whose GetConfigForClient selects,
// for each handshake, the config of the state current at that moment. That
// config requires TLS 1.2 or later, requires a client certificate that
// verifies against the client CA pool, serves the current key pair and
// offers ALPN "h2" and "http/1.1".
//
// Set the result as http.Server.TLSConfig and call ServeTLS or
// ListenAndServeTLS with empty file names. HTTP/2 stays enabled because the
// per-handshake config offers "h2". Every returned config follows Reload.
func (s *Source) ServerConfig() *tls.Config {
	return &tls.Config{
		// Once GetConfigForClient returns a config, crypto/tls uses only the
		// session ticket keys of this one. The other fields are set so that
		// code that reads this config, such as the HTTP/2 setup of net/http,
		// finds the same protocol settings.
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.current.Load().config, nil
		},
	}
}

// Leaf returns the parsed leaf certificate that new handshakes serve, for
// logging its SerialNumber, Subject and NotAfter. Callers must not modify it.
func (s *Source) Leaf() *x509.Certificate {
	return s.current.Load().pair.Leaf
}

func newServerTLSConfig(pair *tls.Certificate, clientCAs *x509.CertPool) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCAs,
		Certificates: []tls.Certificate{*pair},
		NextProtos:   []string{"h2", "http/1.1"},
	}
}
