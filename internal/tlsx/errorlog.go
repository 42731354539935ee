package tlsx

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons for a rejected handshake, as logged in the reason attribute and
// used as the reason label of rotor_tls_handshake_failures_total.
const (
	reasonNoClientCertificate  = "no_client_certificate"
	reasonUnknownAuthority     = "unknown_authority"
	reasonExpired              = "expired_or_not_yet_valid"
	reasonIncompatibleKeyUsage = "incompatible_key_usage"
	reasonRejectedByClient     = "rejected_by_client"
	reasonUnsupportedVersion   = "unsupported_version"
	reasonPlainHTTP            = "plain_http"
	reasonConnectionClosed     = "connection_closed"
	reasonOther                = "other"
)

// handshakeReasons maps text in a handshake error to its reason, first
// match wins. net/http passes only the error text to ErrorLog, so the text
// is all there is to classify. The texts are those of crypto/tls,
// crypto/x509 and net/http in Go 1.26. An error that matches none of them
// gets reasonOther and is still logged in full.
var handshakeReasons = []struct {
	text, reason string
}{
	{"client didn't provide a certificate", reasonNoClientCertificate},
	{"certificate signed by unknown authority", reasonUnknownAuthority},
	{"certificate has expired or is not yet valid", reasonExpired},
	{"incompatible key usage", reasonIncompatibleKeyUsage},
	// The client sent an alert: it rejected the server's certificate, or
	// found no protocol it shares with the server.
	{"remote error: ", reasonRejectedByClient},
	{"client offered only unsupported versions", reasonUnsupportedVersion},
	{"client sent an HTTP request to an HTTPS server", reasonPlainHTTP},
	{"EOF", reasonConnectionClosed},
	{"connection reset by peer", reasonConnectionClosed},
}

// handshakeErrorPrefix starts the message that net/http (Go 1.26) logs for
// a failed handshake: "http: TLS handshake error from ADDR: ERROR".
const handshakeErrorPrefix = "http: TLS handshake error from "

// NewServerErrorLog returns a logger for http.Server.ErrorLog that writes
// every message of net/http to logger at Warn. A failed TLS handshake, which
// reaches the program only through ErrorLog, becomes the record "TLS
// handshake rejected" with the attributes remote_addr, reason and error, and
// is counted in rotor_tls_handshake_failures_total{reason}. The reasons are
// no_client_certificate, unknown_authority, expired_or_not_yet_valid,
// incompatible_key_usage (for instance a certificate without client auth),
// rejected_by_client, unsupported_version, plain_http, connection_closed and
// other.
//
// It returns an error when the counter is already registered on
// registerer. Nil registerer means prometheus.DefaultRegisterer.
func NewServerErrorLog(logger *slog.Logger, registerer prometheus.Registerer) (*log.Logger, error) {
	if registerer == nil {
		registerer = prometheus.DefaultRegisterer
	}
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rotor_tls_handshake_failures_total",
		Help: "TLS handshakes that the API listener rejected or that failed, by reason.",
	}, []string{"reason"})
	if err := registerer.Register(failures); err != nil {
		return nil, fmt.Errorf("register TLS handshake failure counter: %w", err)
	}
	// Each known reason starts at zero, so that a rate over it is defined
	// before the first failure.
	for _, known := range handshakeReasons {
		failures.WithLabelValues(known.reason)
	}
	failures.WithLabelValues(reasonOther)

	handler := &errorLogHandler{Handler: logger.Handler(), failures: failures}
	return slog.NewLogLogger(handler, slog.LevelWarn), nil
}

// errorLogHandler rewrites the handshake errors of net/http into
// structured records and passes every other record on unchanged.
type errorLogHandler struct {
	slog.Handler
	failures *prometheus.CounterVec
}

func (h *errorLogHandler) Handle(ctx context.Context, record slog.Record) error {
	rest, ok := strings.CutPrefix(record.Message, handshakeErrorPrefix)
	if !ok {
		return h.Handler.Handle(ctx, record)
	}
	// A remote address never contains ": ", even in IPv6 form ("[::1]:443").
	remoteAddr, cause, ok := strings.Cut(rest, ": ")
	if !ok {
		return h.Handler.Handle(ctx, record)
	}

	reason := classifyHandshakeError(cause)
	rejected := slog.NewRecord(record.Time, record.Level, "TLS handshake rejected", record.PC)
	rejected.AddAttrs(
		slog.String("remote_addr", remoteAddr),
		slog.String("reason", reason),
		slog.String("error", cause),
	)
	err := h.Handler.Handle(ctx, rejected)

	// Counting after logging lets a reader of the counter find the line.
	h.failures.WithLabelValues(reason).Inc()
	return err
}

func (h *errorLogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &errorLogHandler{Handler: h.Handler.WithAttrs(attrs), failures: h.failures}
}

func (h *errorLogHandler) WithGroup(name string) slog.Handler {
	return &errorLogHandler{Handler: h.Handler.WithGroup(name), failures: h.failures}
}

func classifyHandshakeError(text string) string {
	for _, known := range handshakeReasons {
		if strings.Contains(text, known.text) {
			return known.reason
		}
	}
	return reasonOther
}
