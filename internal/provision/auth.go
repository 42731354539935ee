package provision

import (
	"context"
	"fmt"

	vault "github.com/hashicorp/vault/api"
)

// policyHCL is everything rotor may do. Token renewal and lookup of its own
// token come from Vault's default policy. Revocation is allowed only on the
// lease paths of rotor's own roles.
var policyHCL = fmt.Sprintf(`
path "%[1]s/creds/%[2]s" {
  capabilities = ["read"]
}

path "%[1]s/creds/%[3]s" {
  capabilities = ["read"]
}

path "sys/leases/renew" {
  capabilities = ["update"]
}

path "sys/leases/revoke/%[1]s/creds/%[2]s/*" {
  capabilities = ["update"]
}

path "sys/leases/revoke/%[1]s/creds/%[3]s/*" {
  capabilities = ["update"]
}
`, DatabaseMount, RuntimeRole, MigrationRole)

func configurePolicy(ctx context.Context, client *vault.Client, _ Options) error {
	if err := client.Sys().PutPolicyWithContext(ctx, Policy, policyHCL); err != nil {
		return fmt.Errorf("write policy %s: %w", Policy, err)
	}
	return nil
}

func configureAppRole(ctx context.Context, client *vault.Client, opts Options) error {
	auths, err := client.Sys().ListAuthWithContext(ctx)
	if err != nil {
		return fmt.Errorf("list auth methods: %w", err)
	}
	if _, ok := auths[AppRoleMount+"/"]; !ok {
		err := client.Sys().EnableAuthWithOptionsWithContext(ctx, AppRoleMount, &vault.EnableAuthOptions{Type: "approle"})
		if err != nil {
			return fmt.Errorf("enable approle at %s/: %w", AppRoleMount, err)
		}
	}

	_, err = write(ctx, client, "auth/"+AppRoleMount+"/role/"+AppRoleName, map[string]any{
		"token_policies": []string{Policy},
		"token_ttl":      seconds(opts.TokenTTL),
		"token_max_ttl":  seconds(opts.TokenMaxTTL),
		"token_type":     "service",
	})
	return err
}

// AppRoleCredentials returns rotor's AppRole role id and a new secret id.
// Each call issues another secret id; the old ones stay valid.
func AppRoleCredentials(ctx context.Context, client *vault.Client) (roleID, secretID string, err error) {
	base := "auth/" + AppRoleMount + "/role/" + AppRoleName

	role, err := client.Logical().ReadWithContext(ctx, base+"/role-id")
	if err != nil {
		return "", "", fmt.Errorf("read %s/role-id: %w", base, err)
	}
	if role == nil {
		return "", "", fmt.Errorf("read %s/role-id: not found: run Configure first", base)
	}
	roleID, _ = role.Data["role_id"].(string)

	secret, err := write(ctx, client, base+"/secret-id", nil)
	if err != nil {
		return "", "", err
	}
	secretID, _ = secret.Data["secret_id"].(string)
	if roleID == "" || secretID == "" {
		return "", "", fmt.Errorf("%s returned an empty role id or secret id", base)
	}
	return roleID, secretID, nil
}
