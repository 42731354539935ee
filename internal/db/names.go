package db

// Names of the roles and the schema that [Bootstrap] creates. Every query in
// this package qualifies its tables with [Schema].
const (
	// OwnerRole owns the schema and every object in it.
	OwnerRole = "rotor_owner"

	// AppRole holds the privileges of the runtime users.
	AppRole = "rotor_app"

	// Schema contains rotor's tables, including the migration history.
	Schema = "rotor"

	// DefaultVaultUser is the name of Vault's login role when
	// BootstrapOptions.VaultUser is empty.
	DefaultVaultUser = "vault"

	// VersionTable is the table, relative to Schema, in which goose records
	// the applied migrations.
	VersionTable = "goose_db_version"
)
