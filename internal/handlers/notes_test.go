package handlers

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"example.com/rotor/internal/notes"
)

func TestNotesCRUD(t *testing.T) {
	srv := newTestServer(t)

	// Create.
	rec := srv.send(t, clientA, http.MethodPost, "/v1/notes", `{"title":"groceries","body":"milk"}`)
	checkStatus(t, rec, http.StatusCreated)
	created := decodeJSONBody[noteJSON](t, rec)
	if created.Title != "groceries" || created.Body != "milk" {
		t.Errorf("created note: got title %q body %q, want %q and %q", created.Title, created.Body, "groceries", "milk")
	}
	if got, want := rec.Header().Get("Location"), notePath(created.ID); got != want {
		t.Errorf("Location: got %q, want %q", got, want)
	}
	if !created.UpdatedAt.Equal(created.CreatedAt) {
		t.Errorf("updated_at of a new note: got %v, want created_at %v", created.UpdatedAt, created.CreatedAt)
	}

	// Read.
	rec = srv.send(t, clientA, http.MethodGet, notePath(created.ID), "")
	checkStatus(t, rec, http.StatusOK)
	if got := decodeJSONBody[noteJSON](t, rec); got != created {
		t.Errorf("read note: got %+v, want %+v", got, created)
	}

	// Update the title only.
	rec = srv.send(t, clientA, http.MethodPatch, notePath(created.ID), `{"title":"shopping"}`)
	checkStatus(t, rec, http.StatusOK)
	patched := decodeJSONBody[noteJSON](t, rec)
	if patched.Title != "shopping" || patched.Body != "milk" {
		t.Errorf("patched note: got title %q body %q, want %q and %q", patched.Title, patched.Body, "shopping", "milk")
	}
	if patched.UpdatedAt.Before(created.UpdatedAt) {
		t.Errorf("updated_at: got %v, want not before %v", patched.UpdatedAt, created.UpdatedAt)
	}

	// Delete, after which the note is gone.
	rec = srv.send(t, clientA, http.MethodDelete, notePath(created.ID), "")
	checkStatus(t, rec, http.StatusNoContent)
	if rec.Body.Len() != 0 {
		t.Errorf("delete body: got %q, want empty", rec.Body)
	}
	rec = srv.send(t, clientA, http.MethodGet, notePath(created.ID), "")
	checkProblem(t, rec, http.StatusNotFound, ProblemNotFound)
	rec = srv.send(t, clientA, http.MethodDelete, notePath(created.ID), "")
	checkProblem(t, rec, http.StatusNotFound, ProblemNotFound)
}

func TestNoteJSONShape(t *testing.T) {
	srv := newTestServer(t)
	note := srv.createNote(t, clientA, "title", "body")

	rec := srv.send(t, clientA, http.MethodGet, notePath(note.ID), "")
	checkStatus(t, rec, http.StatusOK)
	var members map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &members); err != nil {
		t.Fatalf("decode body %s: %v", rec.Body, err)
	}
	got := slices.Sorted(maps.Keys(members))
	want := []string{"body", "created_at", "id", "title", "updated_at"}
	if !slices.Equal(got, want) {
		t.Errorf("members: got %v, want %v", got, want)
	}
}

func TestPatchMediaTypes(t *testing.T) {
	for _, contentType := range []string{
		"application/json",
		"application/json; charset=utf-8",
		"application/merge-patch+json",
		"application/merge-patch+json; charset=UTF-8",
	} {
		t.Run(contentType, func(t *testing.T) {
			srv := newTestServer(t)
			note := srv.createNote(t, clientA, "title", "body")

			req := newRequest(http.MethodPatch, notePath(note.ID), `{"body":"new body"}`)
			req.Header.Set("Content-Type", contentType)
			rec := srv.serve(authenticate(t, req, clientA))

			checkStatus(t, rec, http.StatusOK)
			if got := decodeJSONBody[noteJSON](t, rec); got.Body != "new body" {
				t.Errorf("body: got %q, want %q", got.Body, "new body")
			}
		})
	}
}

func TestListPagination(t *testing.T) {
	srv := newTestServer(t)
	var want []string
	for i := range 5 {
		title := fmt.Sprintf("note %d", i)
		srv.createNote(t, clientA, title, "")
		want = append(want, title)
	}

	var got []string
	var pageSizes []int
	target := "/v1/notes?limit=2"
	for page := 1; ; page++ {
		if page > 3 {
			t.Fatalf("got more than 3 pages, want 3")
		}
		rec := srv.send(t, clientA, http.MethodGet, target, "")
		checkStatus(t, rec, http.StatusOK)
		body := decodeJSONBody[notePageJSON](t, rec)

		pageSizes = append(pageSizes, len(body.Items))
		for _, item := range body.Items {
			got = append(got, item.Title)
		}
		if body.NextCursor == "" {
			if strings.Contains(rec.Body.String(), "next_cursor") {
				t.Errorf("last page: got %s, want no next_cursor member", rec.Body)
			}
			break
		}
		target = "/v1/notes?limit=2&cursor=" + body.NextCursor
	}

	if !slices.Equal(pageSizes, []int{2, 2, 1}) {
		t.Errorf("page sizes: got %v, want [2 2 1]", pageSizes)
	}
	if !slices.Equal(got, want) {
		t.Errorf("titles: got %v, want %v", got, want)
	}
}

func TestListPageSizes(t *testing.T) {
	tests := []struct {
		name         string
		notes        int
		query        string
		wantItems    int
		wantNextPage bool
	}{
		{"default limit", notes.DefaultPageSize + 1, "", notes.DefaultPageSize, true},
		{"max limit", notes.MaxPageSize + 1, "?limit=100", notes.MaxPageSize, true},
		{"last page exactly full", 2, "?limit=2", 2, false},
		{"no notes", 0, "", 0, false},
		{"empty parameters", 3, "?limit=&cursor=", 3, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newTestServer(t)
			for i := range tc.notes {
				srv.createNote(t, clientA, fmt.Sprintf("note %d", i), "")
			}

			rec := srv.send(t, clientA, http.MethodGet, "/v1/notes"+tc.query, "")
			checkStatus(t, rec, http.StatusOK)
			page := decodeJSONBody[notePageJSON](t, rec)

			if len(page.Items) != tc.wantItems {
				t.Errorf("items: got %d, want %d", len(page.Items), tc.wantItems)
			}
			if gotNextPage := page.NextCursor != ""; gotNextPage != tc.wantNextPage {
				t.Errorf("next_cursor %q: got a next page %t, want %t", page.NextCursor, gotNextPage, tc.wantNextPage)
			}
			if !strings.Contains(rec.Body.String(), `"items":[`) {
				t.Errorf("body: got %s, want an items array, never null", rec.Body)
			}
		})
	}
}

func TestListRejectsBadQuery(t *testing.T) {
	for _, query := range []string{
		"limit=0",
		"limit=101",
		"limit=-1",
		"limit=abc",
		"limit=2.5",
		"cursor=not*base64",
		"cursor=AAAA",                         // 3 bytes, not a UUID
		"cursor=AAAAAAAAAAAAAAAAAAAAAA%3D%3D", // padded
	} {
		t.Run(query, func(t *testing.T) {
			srv := newTestServer(t)
			rec := srv.send(t, clientA, http.MethodGet, "/v1/notes?"+query, "")
			checkProblem(t, rec, http.StatusBadRequest, ProblemInvalidParameter)
		})
	}
}

func TestOwnerIsolation(t *testing.T) {
	srv := newTestServer(t)
	note := srv.createNote(t, clientA, "private", "for A only")

	rec := srv.send(t, clientB, http.MethodGet, notePath(note.ID), "")
	checkProblem(t, rec, http.StatusNotFound, ProblemNotFound)
	rec = srv.send(t, clientB, http.MethodPatch, notePath(note.ID), `{"title":"taken"}`)
	checkProblem(t, rec, http.StatusNotFound, ProblemNotFound)
	rec = srv.send(t, clientB, http.MethodDelete, notePath(note.ID), "")
	checkProblem(t, rec, http.StatusNotFound, ProblemNotFound)

	rec = srv.send(t, clientB, http.MethodGet, "/v1/notes", "")
	checkStatus(t, rec, http.StatusOK)
	if page := decodeJSONBody[notePageJSON](t, rec); len(page.Items) != 0 {
		t.Errorf("B's notes: got %d, want 0", len(page.Items))
	}

	// A's note survives B's attempts unchanged.
	rec = srv.send(t, clientA, http.MethodGet, notePath(note.ID), "")
	checkStatus(t, rec, http.StatusOK)
	if got := decodeJSONBody[noteJSON](t, rec); got != note {
		t.Errorf("A's note: got %+v, want %+v", got, note)
	}
}

func TestRequestErrors(t *testing.T) {
	srv := newTestServer(t)
	note := srv.createNote(t, clientA, "title", "body")
	path := notePath(note.ID)
	oversized := `{"title":"big","body":"` + strings.Repeat("x", MaxBodyBytes) + `"}`

	tests := []struct {
		name        string
		method      string
		target      string
		contentType string
		body        string
		wantStatus  int
		wantType    string
		wantFields  []notes.FieldError
	}{
		{"malformed JSON", http.MethodPost, "/v1/notes", "application/json", `{"title" "x"}`, 400, ProblemMalformedJSON, nil},
		{"truncated JSON", http.MethodPost, "/v1/notes", "application/json", `{"title":`, 400, ProblemMalformedJSON, nil},
		{"empty body", http.MethodPost, "/v1/notes", "application/json", ``, 400, ProblemMalformedJSON, nil},
		{"array body", http.MethodPost, "/v1/notes", "application/json", `[]`, 400, ProblemMalformedJSON, nil},
		{"wrong member type", http.MethodPost, "/v1/notes", "application/json", `{"title":5}`, 400, ProblemMalformedJSON, nil},
		{"trailing object", http.MethodPost, "/v1/notes", "application/json", `{"title":"a"}{"title":"b"}`, 400, ProblemMalformedJSON, nil},
		{"trailing garbage", http.MethodPost, "/v1/notes", "application/json", `{"title":"a"} x`, 400, ProblemMalformedJSON, nil},
		{"trailing bracket", http.MethodPost, "/v1/notes", "application/json", `{"title":"a"}]`, 400, ProblemMalformedJSON, nil},
		{"unknown field", http.MethodPost, "/v1/notes", "application/json", `{"title":"a","colour":"red"}`, 400, ProblemUnknownField, nil},
		{"oversized body", http.MethodPost, "/v1/notes", "application/json", oversized, 413, ProblemBodyTooLarge, nil},
		{"text/plain", http.MethodPost, "/v1/notes", "text/plain", `{"title":"a"}`, 415, ProblemUnsupportedMediaType, nil},
		{"missing content type", http.MethodPost, "/v1/notes", "", `{"title":"a"}`, 415, ProblemUnsupportedMediaType, nil},
		{"invalid content type", http.MethodPost, "/v1/notes", "application/", `{"title":"a"}`, 415, ProblemUnsupportedMediaType, nil},
		{"latin1 charset", http.MethodPost, "/v1/notes", "application/json; charset=iso-8859-1", `{"title":"a"}`, 415, ProblemUnsupportedMediaType, nil},
		{"merge patch on create", http.MethodPost, "/v1/notes", "application/merge-patch+json", `{"title":"a"}`, 415, ProblemUnsupportedMediaType, nil},
		{"empty title", http.MethodPost, "/v1/notes", "application/json", `{"title":" ","body":"b"}`, 422, ProblemValidation,
			[]notes.FieldError{{Field: "title", Reason: "must not be empty"}}},
		{"too long title", http.MethodPost, "/v1/notes", "application/json", `{"title":"` + strings.Repeat("t", notes.MaxTitleLength+1) + `"}`, 422, ProblemValidation,
			[]notes.FieldError{{Field: "title", Reason: "must be at most 200 characters"}}},
		{"invalid id on get", http.MethodGet, "/v1/notes/not-a-uuid", "", ``, 400, ProblemInvalidID, nil},
		{"invalid id on patch", http.MethodPatch, "/v1/notes/not-a-uuid", "application/json", `{"title":"a"}`, 400, ProblemInvalidID, nil},
		{"invalid id on delete", http.MethodDelete, "/v1/notes/123", "", ``, 400, ProblemInvalidID, nil},
		{"empty patch", http.MethodPatch, path, "application/json", `{}`, 422, ProblemValidation,
			[]notes.FieldError{{Field: "", Reason: "at least one of title and body must be set"}}},
		{"null title", http.MethodPatch, path, "application/merge-patch+json", `{"title":null}`, 422, ProblemValidation,
			[]notes.FieldError{{Field: "title", Reason: "must not be null"}}},
		{"too long patch title", http.MethodPatch, path, "application/json", `{"title":"` + strings.Repeat("t", notes.MaxTitleLength+1) + `"}`, 422, ProblemValidation,
			[]notes.FieldError{{Field: "title", Reason: "must be at most 200 characters"}}},
		{"wrong patch member type", http.MethodPatch, path, "application/json", `{"body":["x"]}`, 400, ProblemMalformedJSON, nil},
		{"unknown patch field", http.MethodPatch, path, "application/json", `{"owner":"spiffe://rotor.test/client-b"}`, 400, ProblemUnknownField, nil},
		{"text/plain patch", http.MethodPatch, path, "text/plain", `{"title":"a"}`, 415, ProblemUnsupportedMediaType, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := newRequest(tc.method, tc.target, tc.body)
			req.Header.Del("Content-Type")
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}

			rec := srv.serve(authenticate(t, req, clientA))

			problem := checkProblem(t, rec, tc.wantStatus, tc.wantType)
			if !slices.Equal(problem.Errors, tc.wantFields) {
				t.Errorf("errors: got %+v, want %+v", problem.Errors, tc.wantFields)
			}
		})
	}

	// None of the rejected requests changed the note.
	rec := srv.send(t, clientA, http.MethodGet, path, "")
	checkStatus(t, rec, http.StatusOK)
	if got := decodeJSONBody[noteJSON](t, rec); got != note {
		t.Errorf("note after rejected requests: got %+v, want %+v", got, note)
	}
}
