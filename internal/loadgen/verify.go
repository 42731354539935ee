package loadgen

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// VerifyError lists the notes that Verify found missing or changed.
type VerifyError struct {
	// Checked is the number of notes read back.
	Checked int

	// Failures has one error per note that failed, in the order of the
	// notes given to Verify.
	Failures []error
}

func (e *VerifyError) Error() string {
	const shown = 5

	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d acknowledged notes failed verification", len(e.Failures), e.Checked)
	for _, err := range e.Failures[:min(shown, len(e.Failures))] {
		b.WriteString("; ")
		b.WriteString(err.Error())
	}
	if len(e.Failures) > shown {
		fmt.Fprintf(&b, "; and %d more", len(e.Failures)-shown)
	}
	return b.String()
}

// Verify reads each note back from the API at baseURL, one at a time, and
// returns a *VerifyError when any is missing or differs from its content in
// notes. Each read is bounded by DefaultRequestTimeout. When ctx ends, Verify
// stops and returns an error that wraps ctx.Err().
func Verify(ctx context.Context, client *http.Client, baseURL string, notes []Note) error {
	notesURL := baseURL + notesPath
	result := &VerifyError{Checked: len(notes)}

	for _, note := range notes {
		readCtx, cancel := context.WithTimeout(ctx, DefaultRequestTimeout)
		err := getNote(readCtx, client, noteURL(notesURL, note.ID), note)
		cancel()

		if ctx.Err() != nil {
			return fmt.Errorf("verify acknowledged notes: %w", ctx.Err())
		}
		if err != nil {
			result.Failures = append(result.Failures, err)
		}
	}

	if len(result.Failures) > 0 {
		return result
	}
	return nil
}
