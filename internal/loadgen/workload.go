package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// notesPath is the collection of the notes API.
const notesPath = "/v1/notes"

// Operation is one kind of request of the workload.
type Operation string

const (
	OpCreate Operation = "create" // POST /v1/notes
	OpPatch  Operation = "patch"  // PATCH /v1/notes/{id}, setting a new body
	OpGet    Operation = "get"    // GET /v1/notes/{id}
	OpList   Operation = "list"   // GET /v1/notes, the first page
)

// Note is a note as the load generator last wrote it.
type Note struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Body  string `json:"body"`
}

// request is one chosen operation with what it sends and expects.
type request struct {
	op Operation

	// note is the ledger entry that a GET or PATCH reserved, nil otherwise.
	note *trackedNote

	// want is the content that the response must carry: for a GET, the
	// last acknowledged write; for a POST or PATCH, the content sent. A list
	// leaves it zero.
	want Note
}

// choose picks the operation of request index and reserves its note.
func (w *worker) choose(index int64) request {
	if w.random.Float64() < w.cfg.WriteRatio {
		if w.random.Float64() < w.cfg.PatchRatio {
			if note, current, ok := w.ledger.reserveWrite(w.random); ok {
				current.Body = fmt.Sprintf("Body written by request %d, a PATCH.", index)
				return request{op: OpPatch, note: note, want: current}
			}
		}
		return request{op: OpCreate, want: Note{
			Title: fmt.Sprintf("loadgen note %d", index),
			Body:  fmt.Sprintf("Body written by request %d, a POST.", index),
		}}
	}

	if w.random.Float64() >= w.cfg.ListRatio {
		if note, current, ok := w.ledger.reserveRead(w.random); ok {
			return request{op: OpGet, note: note, want: current}
		}
	}
	return request{op: OpList}
}

// do sends the request and checks the response. After a successful POST it
// sets r.want.ID. Every error is a *requestError.
func (r *request) do(ctx context.Context, client *http.Client, notesURL string) error {
	switch r.op {
	case OpCreate:
		payload, _ := json.Marshal(map[string]string{"title": r.want.Title, "body": r.want.Body})
		got, err := exchangeNote(ctx, client, http.MethodPost, notesURL, "application/json", payload, http.StatusCreated)
		if err != nil {
			return err
		}
		if got.ID == "" || got.Title != r.want.Title || got.Body != r.want.Body {
			return contentError(http.MethodPost, notesURL, got, r.want)
		}
		r.want.ID = got.ID
		return nil

	case OpPatch:
		url := noteURL(notesURL, r.want.ID)
		payload, _ := json.Marshal(map[string]string{"body": r.want.Body})
		got, err := exchangeNote(ctx, client, http.MethodPatch, url, "application/merge-patch+json", payload, http.StatusOK)
		if err != nil {
			return err
		}
		if got != r.want {
			return contentError(http.MethodPatch, url, got, r.want)
		}
		return nil

	case OpGet:
		return getNote(ctx, client, noteURL(notesURL, r.want.ID), r.want)

	default:
		return listNotes(ctx, client, notesURL)
	}
}

// finish updates the ledger with the outcome of the request.
func (r request) finish(l *ledger, err error) {
	switch r.op {
	case OpCreate:
		if err == nil {
			l.add(r.want)
		}
	case OpPatch:
		l.releaseWrite(r.note, r.want, err == nil)
	case OpGet:
		l.releaseRead(r.note)
	}
}
