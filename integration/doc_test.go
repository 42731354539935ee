// Package integration tests rotor end to end: Postgres and Vault run in
// containers on a Docker network of their own, Vault is configured by the
// provision package, and rotor runs in-process on loopback ports with a
// server certificate from Vault's PKI. Clients speak mutual TLS with
// certificates the tests issue.
//
// The tests need a Docker engine and the images that deploy/images.sh
// provides; `make test` runs them.
package integration
