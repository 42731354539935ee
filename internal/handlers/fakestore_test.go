package handlers

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"example.com/rotor/internal/notes"
)

// fakeStore is an in-memory notes.Store. Like the real store, it scopes
// every note to its owner, lists notes in id order, and fails with the
// context's error once the context is done.
type fakeStore struct {
	mu      sync.Mutex
	byOwner map[string]map[uuid.UUID]notes.Note
	err     error // returned by every method when set
}

var _ notes.Store = (*fakeStore)(nil)

func newFakeStore() *fakeStore {
	return &fakeStore{byOwner: make(map[string]map[uuid.UUID]notes.Note)}
}

// failWith makes every later call return err.
func (s *fakeStore) failWith(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

// check returns the error that a call must fail with, if any. The caller
// holds s.mu.
func (s *fakeStore) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.err
}

func (s *fakeStore) Create(ctx context.Context, owner, title, body string) (notes.Note, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return notes.Note{}, err
	}

	// google/uuid makes version 7 ids monotonic within a process, so id
	// order is creation order, as with the real store.
	now := time.Now().UTC()
	note := notes.Note{
		ID:        uuid.Must(uuid.NewV7()),
		Owner:     owner,
		Title:     title,
		Body:      body,
		CreatedAt: now,
		UpdatedAt: now,
	}
	if s.byOwner[owner] == nil {
		s.byOwner[owner] = make(map[uuid.UUID]notes.Note)
	}
	s.byOwner[owner][note.ID] = note
	return note, nil
}

func (s *fakeStore) Get(ctx context.Context, owner string, id uuid.UUID) (notes.Note, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return notes.Note{}, err
	}

	note, ok := s.byOwner[owner][id]
	if !ok {
		return notes.Note{}, notes.ErrNotFound
	}
	return note, nil
}

func (s *fakeStore) List(ctx context.Context, owner string, after uuid.UUID, limit int) ([]notes.Note, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	// The same contract as the Postgres store, so that a handler asking
	// for too much fails here too.
	if limit < 1 || limit > notes.MaxListLimit {
		return nil, fmt.Errorf("list notes: invalid limit %d: must be between 1 and %d", limit, notes.MaxListLimit)
	}

	var page []notes.Note
	for _, note := range s.byOwner[owner] {
		if bytes.Compare(note.ID[:], after[:]) > 0 {
			page = append(page, note)
		}
	}
	slices.SortFunc(page, func(a, b notes.Note) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	return page[:min(limit, len(page))], nil
}

func (s *fakeStore) Update(ctx context.Context, owner string, id uuid.UUID, patch notes.Patch) (notes.Note, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return notes.Note{}, err
	}

	note, ok := s.byOwner[owner][id]
	if !ok {
		return notes.Note{}, notes.ErrNotFound
	}
	if patch.Title != nil {
		note.Title = *patch.Title
	}
	if patch.Body != nil {
		note.Body = *patch.Body
	}
	note.UpdatedAt = time.Now().UTC()
	s.byOwner[owner][id] = note
	return note, nil
}

func (s *fakeStore) Delete(ctx context.Context, owner string, id uuid.UUID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return err
	}

	if _, ok := s.byOwner[owner][id]; !ok {
		return notes.ErrNotFound
	}
	delete(s.byOwner[owner], id)
	return nil
}

// panickingStore is a notes.Store whose List panics with value.
type panickingStore struct {
	notes.Store
	value any
}

func (s panickingStore) List(context.Context, string, uuid.UUID, int) ([]notes.Note, error) {
	panic(s.value)
}
