package secrets

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by Holder.Current.
var (
	ErrNoCredential      = errors.New("no database credential has been read from vault yet")
	ErrCredentialExpired = errors.New("database credential expired and vault has not issued a new one")
)

// Credential is one database user issued by Vault. Values are immutable once
// published; a renewal publishes a copy with a later ExpiresAt.
type Credential struct {
	Username string
	Password string
	LeaseID  string

	// ExpiresAt is when the lease ends unless renewed: issue or last renewal
	// time plus the lease duration.
	ExpiresAt time.Time

	// Generation counts the credentials read since start-up, from 1.
	Generation uint64
}

// String leaves the password out, so a Credential is safe to log.
func (c *Credential) String() string {
	return fmt.Sprintf("credential{user=%s lease=%s generation=%d expires=%s}",
		c.Username, c.LeaseID, c.Generation, c.ExpiresAt.Format(time.RFC3339))
}

// Holder publishes the current credential. The zero value is ready to use and
// holds none. It is safe for concurrent use.
type Holder struct {
	current atomic.Pointer[Credential]
	now     func() time.Time

	// mu guards changed, which is closed and replaced at every Store.
	mu      sync.Mutex
	changed chan struct{}
}

// Current returns the credential in use, or an error when there is none or
// it has expired.
func (h *Holder) Current() (*Credential, error) {
	c := h.current.Load()
	if c == nil {
		return nil, ErrNoCredential
	}
	if !h.clock().Before(c.ExpiresAt) {
		return nil, fmt.Errorf("%w: %s", ErrCredentialExpired, c)
	}
	return c, nil
}

// Store publishes c as the credential in use and wakes every caller waiting
// on Changed.
func (h *Holder) Store(c *Credential) {
	h.current.Store(c)

	h.mu.Lock()
	if h.changed != nil {
		close(h.changed)
		h.changed = nil
	}
	h.mu.Unlock()
}

// Load returns the published credential, expired or not, or nil.
func (h *Holder) Load() *Credential {
	return h.current.Load()
}

// Changed returns a channel that is closed at the next Store.
func (h *Holder) Changed() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.changed == nil {
		h.changed = make(chan struct{})
	}
	return h.changed
}

// IsCurrent reports whether user is the user of the published credential.
// With none published, every user is current, so nothing is retired.
func (h *Holder) IsCurrent(user string) bool {
	c := h.current.Load()
	return c == nil || c.Username == user
}

func (h *Holder) clock() time.Time {
	if h.now != nil {
		return h.now()
	}
	return time.Now()
}
