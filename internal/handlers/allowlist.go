package handlers

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
)

// AllowList restricts which client identities may call the notes API. The
// zero value allows every client with a verified certificate.
//
// An entry is either an exact identity, such as
// "spiffe://rotor.local/client/reports", or a prefix that ends with "*",
// such as "spiffe://rotor.local/client/*", which allows every identity that
// starts with the text before the "*". The "*" matches any text, including
// "/", so put the separator before it. Matching is case-sensitive, byte for
// byte, as in tlsx.ClientIdentity.
type AllowList struct {
	entries  []string // as configured, for String
	exact    map[string]bool
	prefixes []string
}

// ParseAllowList parses a comma-separated list of entries. Spaces around
// entries and empty entries are ignored, so "" gives the zero AllowList. An
// entry that contains spaces or control characters, or a "*" anywhere but
// at its end, is an error. A lone "*" allows every client, like the zero
// value.
func ParseAllowList(list string) (AllowList, error) {
	var l AllowList
	for entry := range strings.SplitSeq(list, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		if strings.ContainsFunc(entry, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return AllowList{}, fmt.Errorf("invalid allowed client %q: identities contain no spaces or control characters", entry)
		}
		prefix, isPrefix := strings.CutSuffix(entry, "*")
		if strings.Contains(prefix, "*") {
			return AllowList{}, fmt.Errorf("invalid allowed client %q: \"*\" may only end an entry, as in spiffe://rotor.local/client/*", entry)
		}

		l.entries = append(l.entries, entry)
		if isPrefix {
			l.prefixes = append(l.prefixes, prefix)
			continue
		}
		if l.exact == nil {
			l.exact = make(map[string]bool)
		}
		l.exact[entry] = true
	}
	return l, nil
}

// Allows reports whether identity may call the API. Every identity is
// allowed when the list is empty. The empty identity never is when the list
// has entries.
func (l AllowList) Allows(identity string) bool {
	if len(l.entries) == 0 {
		return true
	}
	if identity == "" {
		return false
	}
	if l.exact[identity] {
		return true
	}
	for _, prefix := range l.prefixes {
		if strings.HasPrefix(identity, prefix) {
			return true
		}
	}
	return false
}

// String returns the entries joined by commas, or "" for the zero value.
func (l AllowList) String() string {
	return strings.Join(l.entries, ",")
}

// authorizeIdentity rejects requests whose client identity the allow-list
// does not contain with 403, and logs each at Warn with the identity, so
// that an operator sees which client was turned away. It runs after
// requireIdentity.
func authorizeIdentity(allowed AllowList, logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			identity := IdentityFromContext(r.Context())
			if allowed.Allows(identity) {
				next.ServeHTTP(w, r)
				return
			}

			logger.LogAttrs(r.Context(), slog.LevelWarn, "client identity not allowed",
				slog.String("client_identity", identity),
				slog.String("request_id", RequestIDFromContext(r.Context())),
				slog.String("method", r.Method),
				slog.String("route", routeLabel(r)),
			)
			err := newAPIError(kindForbidden, "The client identity %q may not call this API. Ask the operator of the service to allow it.", identity)
			writeError(w, r, logger, err)
		})
	}
}
