// Command client calls rotor's notes API over mutual TLS with a client
// certificate from a directory in cert-manager's Secret layout (tls.crt,
// tls.key and ca.crt), such as the one that `make up` writes:
//
//	client -dir local/certs/client -url https://localhost:8443 create "title" "body"
//	client -dir local/certs/client list
//	client -dir local/certs/client get ID
//	client -dir local/certs/client -every 5s list
//
// It loads the certificate with tlsx.LoadClient and keeps it current with a
// tlsx.Reloader, which hands each handshake the certificate last loaded
// through tls.Config.GetClientCertificate. With -every the command repeats
// until interrupted, on a new connection each time, and keeps working while
// certrenew renews the certificate.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"example.com/rotor/internal/tlsx"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if errors.Is(err, errUsage) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
}

// errUsage marks errors in the command line, after the usage has been
// printed.
var errUsage = errors.New("invalid command line")

// requestTimeout bounds each API call, handshake included.
const requestTimeout = 10 * time.Second

const usage = `Usage: client [flags] COMMAND [ARGS]

Commands:
  create TITLE [BODY]  create a note and print it
  list                 print the first page of notes
  get ID               print one note

Flags:
`

// run parses args, calls the API and prints the response body to stdout.
// Logs of certificate reloads go to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet(args[0], flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() {
		fmt.Fprint(stderr, usage)
		flags.PrintDefaults()
	}
	dir := flags.String("dir", "local/certs/client", "directory with tls.crt, tls.key and ca.crt of the client")
	baseURL := flags.String("url", "https://localhost:8443", "base URL of rotor's API")
	every := flags.Duration("every", 0, "repeat the command at this interval until interrupted; 0 runs it once")
	if err := flags.Parse(args[1:]); err != nil {
		return err
	}
	call, err := parseCommand(*baseURL, flags.Args())
	if err != nil {
		fmt.Fprintln(stderr, err)
		flags.Usage()
		return errUsage
	}

	log := slog.New(slog.NewTextHandler(stderr, nil))
	source, err := tlsx.LoadClient(*dir)
	if err != nil {
		return err
	}
	// A registry of its own keeps the reloader's metrics out of the
	// default one: a command has no /metrics to serve them on.
	reloader, err := tlsx.NewReloader(source, tlsx.ReloaderConfig{Logger: log, Registerer: prometheus.NewRegistry()})
	if err != nil {
		return err
	}
	ctx, stop := context.WithCancel(ctx)
	var reloading sync.WaitGroup
	reloading.Go(func() { reloader.Run(ctx) })
	defer func() {
		stop()
		reloading.Wait()
	}()

	client := &http.Client{
		Transport: &http.Transport{TLSClientConfig: source.ClientConfig(), ForceAttemptHTTP2: true},
		Timeout:   requestTimeout,
	}
	defer client.CloseIdleConnections()
	return repeat(ctx, *every, stderr, func() error {
		// A kept connection would keep the certificate of its handshake, so
		// each call starts a new one and presents the certificate in use.
		defer client.CloseIdleConnections()
		return call.do(ctx, client, stdout)
	})
}

// repeat runs fn once and returns its error when every is zero. Otherwise
// it runs fn at once and then every interval until ctx ends, writes each
// error that did not come from the end of ctx to stderr, and returns nil.
func repeat(ctx context.Context, every time.Duration, stderr io.Writer, fn func() error) error {
	if every <= 0 {
		return fn()
	}
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		// A call cut short by the end of ctx is no failure worth reporting.
		if err := fn(); err != nil && ctx.Err() == nil {
			fmt.Fprintln(stderr, "client:", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// apiCall is one request of the notes API.
type apiCall struct {
	method string
	url    string
	body   []byte // JSON, or nil
}

func parseCommand(baseURL string, args []string) (apiCall, error) {
	if len(args) == 0 {
		return apiCall{}, errors.New("missing command")
	}
	notesURL := strings.TrimSuffix(baseURL, "/") + "/v1/notes"

	switch command, rest := args[0], args[1:]; command {
	case "create":
		if len(rest) < 1 || len(rest) > 2 {
			return apiCall{}, errors.New("create takes a title and an optional body")
		}
		note := map[string]string{"title": rest[0]}
		if len(rest) == 2 {
			note["body"] = rest[1]
		}
		body, err := json.Marshal(note)
		if err != nil {
			return apiCall{}, fmt.Errorf("encode note: %w", err)
		}
		return apiCall{method: http.MethodPost, url: notesURL, body: body}, nil
	case "list":
		if len(rest) != 0 {
			return apiCall{}, errors.New("list takes no arguments")
		}
		return apiCall{method: http.MethodGet, url: notesURL}, nil
	case "get":
		if len(rest) != 1 {
			return apiCall{}, errors.New("get takes a note id")
		}
		return apiCall{method: http.MethodGet, url: notesURL + "/" + url.PathEscape(rest[0])}, nil
	default:
		return apiCall{}, fmt.Errorf("unknown command %q: want create, list or get", command)
	}
}

// do sends the request and writes the response body to stdout. A status of
// 400 or above is an error that carries the problem's title and detail.
func (c apiCall) do(ctx context.Context, client *http.Client, stdout io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, c.method, c.url, bytes.NewReader(c.body))
	if err != nil {
		return fmt.Errorf("build request %s %s: %w", c.method, c.url, err)
	}
	if c.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", c.method, c.url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read response of %s %s: %w", c.method, c.url, err)
	}

	if resp.StatusCode >= http.StatusBadRequest {
		return fmt.Errorf("%s %s: %s", c.method, c.url, describeProblem(resp.Status, body))
	}
	_, err = stdout.Write(body)
	return err
}

// describeProblem returns the status with the title and detail of an RFC
// 9457 problem body, or with the raw body when it is not one.
func describeProblem(status string, body []byte) string {
	var problem struct {
		Type, Title, Detail string
	}
	if err := json.Unmarshal(body, &problem); err != nil || problem.Type == "" {
		return fmt.Sprintf("%s: %s", status, bytes.TrimSpace(body))
	}
	return fmt.Sprintf("%s: %s (%s): %s", status, problem.Title, problem.Type, problem.Detail)
}
