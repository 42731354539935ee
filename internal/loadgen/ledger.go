package loadgen

import (
	"math/rand/v2"
	"sync"
)

// ledger contains the notes that a run created and whose content is known.
// A note is reserved for reading by any number of GETs or for writing by
// one PATCH, never both, so that the content each GET expects is known.
type ledger struct {
	mu        sync.Mutex // guards every field below and every trackedNote
	notes     []*trackedNote
	uncertain int
}

// trackedNote is a note of the ledger with its reservations.
type trackedNote struct {
	Note
	index   int  // position in ledger.notes
	readers int  // GETs in flight
	writing bool // a PATCH in flight
}

// add records a note whose creation the server acknowledged.
func (l *ledger) add(note Note) {
	l.mu.Lock()
	defer l.mu.Unlock()

	l.notes = append(l.notes, &trackedNote{Note: note, index: len(l.notes)})
}

// reserveRead picks a random note for a GET and returns it with its
// content. It returns false when the ledger is empty or the picked note has
// a PATCH in flight. The caller must call releaseRead.
func (l *ledger) reserveRead(random *rand.Rand) (*trackedNote, Note, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()

	if len(l.notes) == 0 {
		return nil, Note{}, false
	}
	note := l.notes[random.IntN(len(l.notes))]
	if note.writing {
		return nil, Note{}, false
	}
	note.readers++
	return note, note.Note, true
}

func (l *ledger) releaseRead(note *trackedNote) {
	l.mu.Lock()
	defer l.mu.Unlock()

	note.readers--
}

// reserveWrite picks a random note for a PATCH and returns it with its
// content. It returns false when the ledger is empty or the picked note is
// in use. The caller must call releaseWrite.
func (l *ledger) reserveWrite(random *rand.Rand) (*trackedNote, Note, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()

	if len(l.notes) == 0 {
		return nil, Note{}, false
	}
	note := l.notes[random.IntN(len(l.notes))]
	if note.writing || note.readers > 0 {
		return nil, Note{}, false
	}
	note.writing = true
	return note, note.Note, true
}

// releaseWrite ends a PATCH. An acknowledged PATCH stores written as the
// note's content. After a failed one the content is unknown, so the note
// leaves the ledger.
func (l *ledger) releaseWrite(note *trackedNote, written Note, acknowledged bool) {
	l.mu.Lock()
	defer l.mu.Unlock()

	note.writing = false
	if acknowledged {
		note.Note = written
		return
	}

	last := l.notes[len(l.notes)-1]
	last.index = note.index
	l.notes[note.index] = last
	l.notes = l.notes[:len(l.notes)-1]
	l.uncertain++
}

// acknowledged returns the notes with known content and the number of notes
// that left the ledger.
func (l *ledger) acknowledged() ([]Note, int) {
	l.mu.Lock()
	defer l.mu.Unlock()

	notes := make([]Note, len(l.notes))
	for i, note := range l.notes {
		notes[i] = note.Note
	}
	return notes, l.uncertain
}
