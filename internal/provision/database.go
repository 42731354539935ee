package provision

import (
	"context"
	"fmt"

	vault "github.com/hashicorp/vault/api"
)

// Postgres roles that db.Bootstrap creates; the creation statements grant
// them to each user Vault makes.
const (
	runtimeGroup = "rotor_app"
	ownerGroup   = "rotor_owner"
)

// usernameTemplate keeps names well under PostgreSQL's 63-byte identifier
// limit, where a longer name would be truncated and no longer match the one
// Vault stored for revocation.
const usernameTemplate = `{{ printf "v-%s-%s-%s" (.RoleName | truncate 13) (unix_time) (random 8) | lowercase }}`

// revocationStatements end the user's sessions before dropping it, because
// DROP ROLE leaves open sessions running as a role that no longer exists.
var revocationStatements = joinLines(
	`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}';`,
	`DROP ROLE IF EXISTS "{{name}}";`,
)

func creationStatements(group string) string {
	return fmt.Sprintf(`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}' IN ROLE %s;`, group)
}

func configureDatabase(ctx context.Context, client *vault.Client, opts Options) error {
	if opts.DatabaseURL == "" || opts.VaultDBUser == "" || opts.VaultDBPassword == "" {
		return fmt.Errorf("DatabaseURL, VaultDBUser and VaultDBPassword are required")
	}
	if err := enableMount(ctx, client, DatabaseMount, "database", 0); err != nil {
		return err
	}

	// Writing the connection makes Vault connect and verify it, so a
	// Postgres that is not ready fails here rather than at the first read.
	_, err := write(ctx, client, DatabaseMount+"/config/"+DatabaseConfig, map[string]any{
		"plugin_name":       "postgresql-database-plugin",
		"connection_url":    opts.DatabaseURL,
		"username":          opts.VaultDBUser,
		"password":          opts.VaultDBPassword,
		"allowed_roles":     []string{RuntimeRole, MigrationRole},
		"username_template": usernameTemplate,
	})
	if err != nil {
		return err
	}

	roles := []struct {
		name        string
		group       string
		ttl, maxTTL int
	}{
		{RuntimeRole, runtimeGroup, seconds(opts.RuntimeTTL), seconds(opts.RuntimeMaxTTL)},
		{MigrationRole, ownerGroup, seconds(opts.MigrationTTL), 2 * seconds(opts.MigrationTTL)},
	}
	for _, r := range roles {
		_, err := write(ctx, client, DatabaseMount+"/roles/"+r.name, map[string]any{
			"db_name":               DatabaseConfig,
			"creation_statements":   []string{creationStatements(r.group)},
			"revocation_statements": []string{revocationStatements},
			"default_ttl":           r.ttl,
			"max_ttl":               r.maxTTL,
		})
		if err != nil {
			return err
		}
	}
	return nil
}
