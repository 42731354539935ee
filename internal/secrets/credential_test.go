package secrets

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestHolderCurrent(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	h := &Holder{now: func() time.Time { return now }}

	if _, err := h.Current(); !errors.Is(err, ErrNoCredential) {
		t.Errorf("empty holder: got %v, want ErrNoCredential", err)
	}

	h.Store(&Credential{Username: "v-rotor-a", Password: "secret", ExpiresAt: now.Add(time.Minute)})
	c, err := h.Current()
	if err != nil || c.Username != "v-rotor-a" {
		t.Fatalf("valid credential: got %v, %v", c, err)
	}

	now = now.Add(time.Minute)
	if _, err := h.Current(); !errors.Is(err, ErrCredentialExpired) {
		t.Errorf("expired credential: got %v, want ErrCredentialExpired", err)
	}
}

func TestHolderChangedAndIsCurrent(t *testing.T) {
	var h Holder
	if !h.IsCurrent("anyone") {
		t.Error("empty holder: every user should count as current, so nothing is retired")
	}

	changed := h.Changed()
	h.Store(&Credential{Username: "v-rotor-a", ExpiresAt: time.Now().Add(time.Minute)})
	select {
	case <-changed:
	default:
		t.Fatal("Changed was not closed by Store")
	}

	if !h.IsCurrent("v-rotor-a") || h.IsCurrent("v-rotor-b") {
		t.Errorf("IsCurrent: got a=%v b=%v, want true false", h.IsCurrent("v-rotor-a"), h.IsCurrent("v-rotor-b"))
	}
}

func TestCredentialStringHidesPassword(t *testing.T) {
	c := &Credential{Username: "v-rotor-a", Password: "hunter2", LeaseID: "database/creds/rotor/x"}
	if s := c.String(); s == "" || strings.Contains(s, "hunter2") {
		t.Errorf("got %q, want a string without the password", s)
	}
}
