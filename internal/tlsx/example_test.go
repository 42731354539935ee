package tlsx_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sync"
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
// Secret and reloads the certificates whenever the kubelet updates the
// Secret. It has no output check because it needs the Secret and runs until
// stopped.
func ExampleLoad() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	source, err := tlsx.Load("/etc/rotor/tls", "")
	if err != nil {
		slog.Error("loading TLS certificates failed", "err", err)
		return
	}
	reloader, err := tlsx.NewReloader(source, tlsx.ReloaderConfig{Logger: slog.Default()})
	if err != nil {
		slog.Error("creating the TLS reloader failed", "err", err)
		return
	}
	var reloading sync.WaitGroup
	reloading.Go(func() { reloader.Run(ctx) })
	defer func() {
		stop()
		reloading.Wait()
	}()

	server := &http.Server{
		Addr:      ":8443",
		Handler:   http.NotFoundHandler(),
		TLSConfig: source.ServerConfig(),
	}
	go func() {
		<-ctx.Done()
		server.Close()
	}()
	// Empty file names make ListenAndServeTLS use TLSConfig, which keeps
	// HTTP/2 enabled.
	if err := server.ListenAndServeTLS("", ""); !errors.Is(err, http.ErrServerClosed) {
		slog.Error("HTTPS server stopped", "err", err)
	}
}

// This example calls a mutual-TLS API with a client certificate from a
// mounted Secret. GetClientCertificate hands each handshake the certificate
// that the reloader last loaded, so a long-running client keeps working
// across renewals. It has no output check because it needs the Secret and a
// server.
func ExampleLoadClient() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	source, err := tlsx.LoadClient("/etc/rotor-client/tls")
	if err != nil {
		slog.Error("loading the client certificate failed", "err", err)
		return
	}
	reloader, err := tlsx.NewReloader(source, tlsx.ReloaderConfig{Logger: slog.Default()})
	if err != nil {
		slog.Error("creating the TLS reloader failed", "err", err)
		return
	}
	var reloading sync.WaitGroup
	reloading.Go(func() { reloader.Run(ctx) })
	defer func() {
		stop()
		reloading.Wait()
	}()

	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   source.ClientConfig(),
		ForceAttemptHTTP2: true,
	}}
	resp, err := client.Get("https://rotor:8443/v1/notes")
	if err != nil {
		slog.Error("listing notes failed", "err", err)
		return
	}
	defer resp.Body.Close()
	fmt.Println(resp.Status)
}
