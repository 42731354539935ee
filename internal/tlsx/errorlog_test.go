package tlsx_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"example.com/rotor/internal/tlsx"
	"example.com/rotor/internal/tlsx/tlsxtest"
)

// loggingServer is an HTTPS server whose ErrorLog is NewServerErrorLog.
type loggingServer struct {
	addr     string
	logs     *logBuffer
	registry *prometheus.Registry
}

func startLoggingServer(t *testing.T, source *tlsx.Source) *loggingServer {
	t.Helper()

	ls := &loggingServer{logs: &logBuffer{}, registry: prometheus.NewRegistry()}
	logger := slog.New(slog.NewJSONHandler(ls.logs, nil)).With("component", "http")
	errorLog, err := tlsx.NewServerErrorLog(logger, ls.registry)
	if err != nil {
		t.Fatalf("NewServerErrorLog: %v", err)
	}

	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on 127.0.0.1: %v", err)
	}
	ls.addr = listener.Addr().String()
	server := &http.Server{
		Handler:           http.NotFoundHandler(),
		TLSConfig:         source.ServerConfig(),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          errorLog,
	}
	served := make(chan error, 1)
	go func() { served <- server.ServeTLS(listener, "", "") }()
	t.Cleanup(func() {
		server.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("ServeTLS: got %v, want %v", err, http.ErrServerClosed)
		}
	})
	return ls
}

func (ls *loggingServer) failures(t *testing.T, reason string) float64 {
	t.Helper()

	families, err := ls.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, family := range families {
		if family.GetName() != "rotor_tls_handshake_failures_total" {
			continue
		}
		for _, metric := range family.GetMetric() {
			for _, label := range metric.GetLabel() {
				if label.GetName() == "reason" && label.GetValue() == reason {
					return metric.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestServerErrorLogNamesHandshakeFailures(t *testing.T) {
	f := newFixture(t)
	ls := startLoggingServer(t, mustLoad(t, f.dir, ""))
	otherCA := tlsxtest.NewCA(t, "other CA")
	expired := f.ca.Issue(t, tlsxtest.Leaf{
		URIs:        []string{"spiffe://rotor.example/client/late"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		NotBefore:   time.Now().Add(-48 * time.Hour),
		NotAfter:    time.Now().Add(-time.Hour),
	})
	serverAuthOnly := f.ca.IssueServer(t, "not-a-client.example")

	// sendCertificate makes the client send cert even when its issuer is
	// not among the CAs that the server requests, as a misconfigured client
	// would. Nil sends no certificate.
	sendCertificate := func(cert *tlsxtest.KeyPair) *tls.Config {
		config := tlsxtest.ClientConfig(t, f.ca, nil)
		config.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if cert == nil {
				return &tls.Certificate{}, nil
			}
			pair := cert.TLSCertificate()
			return &pair, nil
		}
		return config
	}
	tls11 := tlsxtest.ClientConfig(t, f.ca, f.client)
	tls11.MinVersion, tls11.MaxVersion = tls.VersionTLS10, tls.VersionTLS11

	tests := []struct {
		name       string
		config     *tls.Config
		wantReason string
		wantError  string
	}{
		{"no client certificate", sendCertificate(nil), "no_client_certificate", "client didn't provide a certificate"},
		{"untrusted CA", sendCertificate(otherCA.IssueClient(t, "spiffe://rotor.example/client/mallory")), "unknown_authority", "certificate signed by unknown authority"},
		{"expired client certificate", sendCertificate(expired), "expired_or_not_yet_valid", "certificate has expired"},
		{"certificate without client auth", sendCertificate(serverAuthOnly), "incompatible_key_usage", "incompatible key usage"},
		{"TLS 1.1", tls11, "unsupported_version", "unsupported versions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := tls.Dial("tcp", ls.addr, tt.config)
			if err == nil {
				// With TLS 1.3 the client learns of the rejection at its first
				// read, after the server has checked the certificate.
				_, err = conn.Read(make([]byte, 1))
				conn.Close()
			}
			if err == nil {
				t.Fatal("handshake succeeded, want it rejected")
			}

			waitFor(t, "a log line with reason "+tt.wantReason, func() bool {
				return ls.failures(t, tt.wantReason) == 1
			})
			record := findRejection(t, ls.logs, tt.wantReason)
			if got, _ := record["error"].(string); !strings.Contains(got, tt.wantError) {
				t.Errorf("error: got %q, want it to contain %q", got, tt.wantError)
			}
			if got, _ := record["remote_addr"].(string); !strings.HasPrefix(got, "127.0.0.1:") {
				t.Errorf("remote_addr: got %q, want 127.0.0.1:PORT", got)
			}
			if got := record["component"]; got != "http" {
				t.Errorf("component: got %v, want http", got)
			}
			if got := record[slog.LevelKey]; got != slog.LevelWarn.String() {
				t.Errorf("level: got %v, want %s", got, slog.LevelWarn)
			}
		})
	}
}

// findRejection returns the only "TLS handshake rejected" record with the
// reason.
func findRejection(t *testing.T, logs *logBuffer, reason string) map[string]any {
	t.Helper()

	var found []map[string]any
	for _, record := range logs.records(t, slog.LevelWarn, "TLS handshake rejected") {
		if record["reason"] == reason {
			found = append(found, record)
		}
	}
	if len(found) != 1 {
		t.Fatalf("records with reason %s: got %d, want 1; log:\n%s", reason, len(found), logs)
	}
	return found[0]
}

func TestServerErrorLogPassesOtherMessages(t *testing.T) {
	logs := &logBuffer{}
	errorLog, err := tlsx.NewServerErrorLog(slog.New(slog.NewJSONHandler(logs, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	const message = "http: Accept error: too many open files; retrying in 5ms"

	errorLog.Print(message)

	if got := logs.records(t, slog.LevelWarn, message); len(got) != 1 {
		t.Errorf("records %q: got %d, want 1; log:\n%s", message, len(got), logs)
	}
}

func TestServerErrorLogPlainHTTP(t *testing.T) {
	f := newFixture(t)
	ls := startLoggingServer(t, mustLoad(t, f.dir, ""))

	conn, err := net.Dial("tcp", ls.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: rotor\r\n\r\n"); err != nil {
		t.Fatal(err)
	}

	waitFor(t, "a log line with reason plain_http", func() bool {
		return ls.failures(t, "plain_http") == 1
	})
	findRejection(t, ls.logs, "plain_http")
}
