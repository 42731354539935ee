package db

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"example.com/rotor/internal/notes"
)

// Retry runs a statement again after failures that a new credential or a
// new connection cures. Whether a failed statement may run again depends on
// what the failure shows about it:
//
//   - The server rejected the login (SQLSTATE 28P01 or 28000): nothing was
//     sent. Retry reports the user through CredentialRejected, waits for a
//     new credential and runs the statement again.
//   - The error came before any byte of the statement was sent
//     (pgconn.SafeToRetry), as when a connection cannot be opened: it runs
//     again.
//   - The server ended the session (57P01 and its kin, or the connection
//     dropped): the statement may or may not have taken effect. Retry has
//     the pool drop its idle connections, which share the cause, and runs
//     the statement again only if the caller marked it idempotent.
//
// Anything else is returned as it is. When the attempts or MaxWait run out
// on a failure of the kinds above, the error wraps notes.ErrUnavailable.
type Retry struct {
	// CredentialRejected is called with the user the server refused and
	// returns once another credential is current. Nil only waits.
	CredentialRejected func(ctx context.Context, user string) error

	// SessionsEnded is called when the server ended a session, so that
	// idle connections that share the fate are closed before use. Nil does
	// nothing.
	SessionsEnded func()

	// Attempts is how many times a statement runs at most; default 4.
	Attempts int

	// MaxWait bounds the time spent on retries of one statement; default 3s.
	MaxWait time.Duration

	// Logger receives a line per retry; nil discards them.
	Logger *slog.Logger
}

type failure int

const (
	permanent failure = iota
	loginRejected
	notSent
	sessionEnded
)

// classify sorts err into the failures Retry handles; user is the user of a
// rejected login.
func classify(err error) (kind failure, user string) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "28P01", "28000":
			var connectErr *pgconn.ConnectError
			if errors.As(err, &connectErr) && connectErr.Config != nil {
				user = connectErr.Config.User
			}
			return loginRejected, user
		case "57P01", "57P02", "57P03":
			// admin_shutdown (pg_terminate_backend, a fast shutdown),
			// crash_shutdown, cannot_connect_now (still starting).
			return sessionEnded, ""
		}
		return permanent, ""
	}

	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) || pgconn.SafeToRetry(err) {
		return notSent, ""
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || pgconn.Timeout(err) {
		return sessionEnded, ""
	}
	return permanent, ""
}

// do runs op until it succeeds, fails for good, or runs out of attempts.
func (r *Retry) do(ctx context.Context, name string, idempotent bool, op func(context.Context) error) error {
	if r == nil {
		return op(ctx)
	}
	attempts := r.Attempts
	if attempts <= 0 {
		attempts = 4
	}
	maxWait := r.MaxWait
	if maxWait <= 0 {
		maxWait = 3 * time.Second
	}
	deadline := time.Now().Add(maxWait)
	delay := 25 * time.Millisecond

	for attempt := 1; ; attempt++ {
		err := op(ctx)
		if err == nil {
			return nil
		}
		kind, user := classify(err)
		if kind == permanent || ctx.Err() != nil {
			return err
		}
		if kind == sessionEnded && !idempotent {
			return fmt.Errorf("%w: %s may or may not have taken effect: %w", notes.ErrUnavailable, name, err)
		}
		if attempt >= attempts || time.Now().After(deadline) {
			return fmt.Errorf("%w: %s failed %d times: %w", notes.ErrUnavailable, name, attempt, err)
		}

		r.logger().Warn("retrying database statement", "op", name, "attempt", attempt, "err", err)
		if err := r.recover(ctx, kind, user, deadline); err != nil {
			return fmt.Errorf("%w: %s: %w", notes.ErrUnavailable, name, err)
		}
		if kind != loginRejected {
			if err := sleep(ctx, delay); err != nil {
				return err
			}
			delay *= 4
		}
	}
}

// recover does what the failure calls for before the next attempt.
func (r *Retry) recover(ctx context.Context, kind failure, user string, deadline time.Time) error {
	switch kind {
	case loginRejected:
		if r.CredentialRejected == nil {
			return nil
		}
		waitCtx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		return r.CredentialRejected(waitCtx, user)
	case sessionEnded:
		if r.SessionsEnded != nil {
			r.SessionsEnded()
		}
	}
	return nil
}

func (r *Retry) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
