package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"unicode/utf8"
)

// FailureKind classifies a failed request.
type FailureKind string

const (
	// FailureTimeout is a request without a complete response within
	// Config.RequestTimeout or the client's Timeout.
	FailureTimeout FailureKind = "timeout"

	// FailureTransport is a connection, TLS or HTTP protocol error, such as
	// a reset stream.
	FailureTransport FailureKind = "transport"

	// FailureServerError is a response with a 5xx status.
	FailureServerError FailureKind = "server_error"

	// FailureUnexpectedStatus is a response with another status than the
	// operation expects, such as 404 for a note that the run created.
	FailureUnexpectedStatus FailureKind = "unexpected_status"

	// FailureBadResponse is a response with the expected status whose body
	// does not decode, or whose note differs from the last acknowledged
	// write.
	FailureBadResponse FailureKind = "bad_response"
)

// maxResponseBytes bounds the response body that is read. A page of
// notes.MaxPageSize notes with bodies of the maximum length fits.
const maxResponseBytes = 4 << 20

// requestError is a failed request.
type requestError struct {
	kind   FailureKind
	method string
	url    string
	err    error
}

func (e *requestError) Error() string {
	return fmt.Sprintf("%s %s: %s: %v", e.method, e.url, e.kind, e.err)
}

func (e *requestError) Unwrap() error { return e.err }

// noteURL returns the URL of the note with the id.
func noteURL(notesURL, id string) string {
	return notesURL + "/" + url.PathEscape(id)
}

// exchange sends a request and returns the response body when the status is
// wantStatus. Every error is a *requestError.
func exchange(ctx context.Context, client *http.Client, method, url, contentType string, payload []byte, wantStatus int) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(payload))
	if err != nil {
		return nil, &requestError{FailureTransport, method, url, err}
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")

	resp, err := client.Do(req)
	if err != nil {
		return nil, &requestError{transportFailureKind(err), method, url, err}
	}
	defer resp.Body.Close()

	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, &requestError{transportFailureKind(err), method, url, fmt.Errorf("read response body: %w", err)}
	}

	if resp.StatusCode != wantStatus {
		kind := FailureUnexpectedStatus
		if resp.StatusCode >= 500 {
			kind = FailureServerError
		}
		err := fmt.Errorf("got status %d, want %d: %s", resp.StatusCode, wantStatus, excerpt(body))
		return nil, &requestError{kind, method, url, err}
	}
	return body, nil
}

// transportFailureKind returns FailureTimeout for a timeout and
// FailureTransport for any other error of sending a request or reading its
// response.
func transportFailureKind(err error) FailureKind {
	if errors.Is(err, context.DeadlineExceeded) {
		return FailureTimeout
	}
	if netErr, ok := errors.AsType[net.Error](err); ok && netErr.Timeout() {
		return FailureTimeout
	}
	return FailureTransport
}

// exchangeNote sends a request whose response is a note.
func exchangeNote(ctx context.Context, client *http.Client, method, url, contentType string, payload []byte, wantStatus int) (Note, error) {
	body, err := exchange(ctx, client, method, url, contentType, payload, wantStatus)
	if err != nil {
		return Note{}, err
	}

	var note Note
	if err := json.Unmarshal(body, &note); err != nil {
		return Note{}, &requestError{FailureBadResponse, method, url, fmt.Errorf("decode note: %w: %s", err, excerpt(body))}
	}
	return note, nil
}

// getNote reads the note at url and checks that it equals want.
func getNote(ctx context.Context, client *http.Client, url string, want Note) error {
	got, err := exchangeNote(ctx, client, http.MethodGet, url, "", nil, http.StatusOK)
	if err != nil {
		return err
	}
	if got != want {
		return contentError(http.MethodGet, url, got, want)
	}
	return nil
}

// listNotes reads the first page of notes and checks that it decodes.
func listNotes(ctx context.Context, client *http.Client, notesURL string) error {
	body, err := exchange(ctx, client, http.MethodGet, notesURL, "", nil, http.StatusOK)
	if err != nil {
		return err
	}

	var page struct {
		Items []Note `json:"items"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return &requestError{FailureBadResponse, http.MethodGet, notesURL, fmt.Errorf("decode page: %w: %s", err, excerpt(body))}
	}
	if page.Items == nil {
		return &requestError{FailureBadResponse, http.MethodGet, notesURL, fmt.Errorf("page has no items array: %s", excerpt(body))}
	}
	return nil
}

func contentError(method, url string, got, want Note) error {
	return &requestError{FailureBadResponse, method, url, fmt.Errorf("got note %+v, want %+v", got, want)}
}

// excerpt returns the start of a response body for an error message.
func excerpt(body []byte) string {
	const maxBytes = 300
	if len(body) <= maxBytes {
		return string(bytes.TrimSpace(body))
	}

	// Cut at a rune boundary, so that the message stays valid UTF-8.
	cut := maxBytes
	for cut > 0 && !utf8.RuneStart(body[cut]) {
		cut--
	}
	return string(body[:cut]) + "..."
}
