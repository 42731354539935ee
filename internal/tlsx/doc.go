// Package tlsx loads the certificates of rotor's mutual-TLS listener, and of
// its clients, from a directory in the layout of a cert-manager certificate
// Secret (tls.crt, tls.key and ca.crt), keeps them current while they are
// renewed, and logs why each rejected handshake was rejected.
//
// # Loading
//
// Load reads the server's key pair and the client CA bundle and checks them
// together: the key must belong to the certificate, and the chain must lead
// to ca.crt. The config of ServerConfig picks the state in use for each
// handshake in GetConfigForClient, so a reload takes effect at the next
// handshake without a restart, for the key pair and the client CA pool
// alike. That is what a CA rotation needs: a trust bundle that goes from
// the old CA, to the old and the new, to the new alone. LoadClient does the
// same for a client, and ClientConfig presents the certificate in use
// through GetClientCertificate.
//
// # Reloading
//
// A Reloader watches the directories of the files, not the files. The
// kubelet updates a mounted Secret by writing a new timestamped directory
// and renaming a new ..data symlink over the old one, and a watch on
// tls.crt, which follows the symlink, ends when the kubelet deletes the old
// directory. The Reloader waits for a burst of events to end, and also
// reads the files every PollInterval in case an event was missed.
//
// A reload reads every file and replaces the state only when all checks
// pass. A tls.crt written before its tls.key fails the key check, and the
// last good pair stays in use. The Reloader logs the failure, counts it,
// and tries again after RetryDelay even when no further event comes.
//
// # Rejected handshakes
//
// crypto/tls rejects a client certificate that is missing, from an
// untrusted CA, expired, or without the client auth extended key usage,
// and net/http reports the rejection only through http.Server.ErrorLog.
// NewServerErrorLog turns those reports into log records with a reason and
// counts them by reason.
package tlsx
