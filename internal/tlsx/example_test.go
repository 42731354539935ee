package tlsx_test

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"example.com/rotor/internal/tlsx"
)

func ExampleClientIdentity() {
	uri, err := url.Parse("spiffe://rotor.example/client/alice")
	if err != nil {
		panic(err)
	}
	withURI := &x509.Certificate{URIs: []*url.URL{uri}, DNSNames: []string{"alice.example"}}
	withDNSName := &x509.Certificate{DNSNames: []string{"alice.example"}}

	fmt.Println(tlsx.ClientIdentity(withURI))
	fmt.Println(tlsx.ClientIdentity(withDNSName))
	// Output:
	// spiffe://rotor.example/client/alice
	// alice.example
}

// This example serves HTTPS with mutual TLS from a mounted cert-manager
// Secret and reloads the certificates on SIGHUP. It has no output check
// because it needs the Secret and runs until stopped.
func ExampleLoad() {
	source, err := tlsx.Load("/etc/rotor/tls", "")
	if err != nil {
		slog.Error("loading TLS certificates failed", "err", err)
		os.Exit(1)
	}

	hangups := make(chan os.Signal, 1)
	signal.Notify(hangups, syscall.SIGHUP)
	go func() {
		for range hangups {
			if err := source.Reload(); err != nil {
				slog.Error("reloading TLS certificates failed, keeping the current ones", "err", err)
				continue
			}
			leaf := source.Leaf()
			slog.Info("reloaded TLS certificates", "serial", leaf.SerialNumber, "subject", leaf.Subject, "not_after", leaf.NotAfter)
		}
	}()

	server := &http.Server{
		Addr:      ":8443",
		Handler:   http.NotFoundHandler(),
		TLSConfig: source.ServerConfig(),
	}
	// Empty file names make ListenAndServeTLS use TLSConfig, which keeps
	// HTTP/2 enabled.
	if err := server.ListenAndServeTLS("", ""); err != nil {
		slog.Error("HTTPS server stopped", "err", err)
	}
}
