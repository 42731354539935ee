// Package secrets logs rotor in to Vault and keeps the database credential
// that the Postgres pool connects with.
//
// A Manager owns one Vault client. It logs in (a token given up front, or an
// api.AuthMethod such as AppRole), reads a dynamic credential from the
// database secrets engine and publishes it through an atomic pointer, so the
// pool's BeforeConnect hook reads the current one without a lock. In the
// background it renews the database lease and the Vault token with vault/api's
// LifetimeWatcher. When a watcher stops, for any reason and whether it sends
// an error or nil, renewal is over: the Manager logs in again if the token
// ended, then reads a new credential and bumps its generation. Failed Vault
// calls are retried with capped, jittered exponential backoff.
//
// A credential past its expiry is never handed out: Current returns
// ErrCredentialExpired instead, and readiness checks report it.
package secrets
