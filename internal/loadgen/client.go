package loadgen

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"example.com/rotor/internal/tlsx"
)

// NewClient returns an HTTP client for the API that presents the client
// certificate in certDir and trusts only the CAs in it. certDir has the
// layout of a cert-manager Secret: tls.crt contains the certificate
// followed by its intermediates, tls.key its private key, and ca.crt the CAs
// that sign the server certificate.
//
// The client offers HTTP/2 and HTTP/1.1 and keeps up to maxIdleConns idle
// HTTP/1.1 connections per host; pass Config.Concurrency. It ignores the
// proxy environment variables and sets no Timeout, because
// Config.RequestTimeout bounds each request.
func NewClient(certDir string, maxIdleConns int) (*http.Client, error) {
	certPath := filepath.Join(certDir, tlsx.CertFile)
	keyPath := filepath.Join(certDir, tlsx.KeyFile)
	caPath := filepath.Join(certDir, tlsx.CAFile)

	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("load client certificate %s and key %s: %w; check that both files exist and contain a PEM certificate and its private key", certPath, keyPath, err)
	}

	caPEM, err := os.ReadFile(caPath)
	if err != nil {
		return nil, fmt.Errorf("read CA bundle: %w; the directory must contain %s with the CA that signs the server certificate", err, tlsx.CAFile)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("invalid CA bundle %s: it contains no PEM certificate", caPath)
	}

	dialer := &net.Dialer{Timeout: 5 * time.Second}
	transport := &http.Transport{
		TLSClientConfig: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			RootCAs:      roots,
			Certificates: []tls.Certificate{pair},
		},
		DialContext:         dialer.DialContext,
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: 5 * time.Second,
		MaxIdleConnsPerHost: maxIdleConns,
		IdleConnTimeout:     90 * time.Second,
	}
	return &http.Client{Transport: transport}, nil
}
