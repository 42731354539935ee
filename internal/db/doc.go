// Package db connects rotor to PostgreSQL and stores notes there.
//
// Credentials come from HashiCorp Vault's database secrets engine and change
// while the service runs. Vault must be able to drop every user it creates,
// and PostgreSQL refuses to drop a role that owns objects, so the users that
// Vault creates own nothing. The package therefore relies on three roles:
//
//   - [OwnerRole] (rotor_owner, NOLOGIN) owns schema [Schema] (rotor) and every
//     object in it. Migration users are members of it, and [Migrate] runs
//     SET ROLE rotor_owner before it creates anything.
//   - [AppRole] (rotor_app, NOLOGIN) holds the runtime privileges: USAGE on
//     the schema and read and write access to its tables and sequences.
//     Runtime users are members of it and can create no objects.
//   - Vault's login user (see [BootstrapOptions]) creates and drops those
//     users. It has CREATEROLE and pg_signal_backend but is not a superuser.
//
// [Bootstrap] creates the roles and the schema once, as a superuser, before
// Vault is configured. [Migrate] applies the embedded schema migrations with
// a short-lived migration user. [NewPool] opens the runtime connection pool,
// which gets the current user and password from a [CredentialFunc] each time
// it opens a connection. [Notes] implements notes.Store on top of the pool.
package db
