// Package provision configures Vault for rotor over Vault's HTTP API: the
// database secrets engine and its roles, the policy rotor runs with, AppRole
// and Kubernetes login, and a PKI with a root and an intermediate CA that
// issue server and client certificates. The docker-compose stack, the
// integration tests and a Kubernetes Job run the same steps, so each step is
// idempotent: running Configure again on a configured Vault changes nothing
// that matters and never fails because something exists.
package provision
