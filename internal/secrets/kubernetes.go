package secrets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	vault "github.com/hashicorp/vault/api"
)

// DefaultServiceAccountTokenPath is the path at which the kubelet mounts a
// pod's projected service account token.
const DefaultServiceAccountTokenPath = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// KubernetesAuth logs in with Vault's Kubernetes auth method. It reads the
// service account token file at every login, because the kubelet rewrites
// projected tokens on disk before they expire and a token read once would
// be rejected at a later login.
type KubernetesAuth struct {
	// Role is the Vault role to log in as.
	Role string

	// TokenPath is the service account token file; default
	// DefaultServiceAccountTokenPath.
	TokenPath string

	// MountPath is the mount path of the auth method; default "kubernetes".
	MountPath string
}

var _ vault.AuthMethod = (*KubernetesAuth)(nil)

// Login implements vault.AuthMethod.
func (k *KubernetesAuth) Login(ctx context.Context, client *vault.Client) (*vault.Secret, error) {
	path := k.TokenPath
	if path == "" {
		path = DefaultServiceAccountTokenPath
	}
	mount := k.MountPath
	if mount == "" {
		mount = "kubernetes"
	}

	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read service account token: %w", err)
	}
	jwt := strings.TrimSpace(string(raw))
	if jwt == "" {
		return nil, fmt.Errorf("read service account token: %s is empty", path)
	}

	secret, err := client.Logical().WriteWithContext(ctx, "auth/"+mount+"/login", map[string]any{
		"role": k.Role,
		"jwt":  jwt,
	})
	if err != nil {
		return nil, fmt.Errorf("kubernetes login as role %s: %w", k.Role, err)
	}
	if secret == nil || secret.Auth == nil {
		return nil, errors.New("kubernetes login: the response contains no token")
	}
	return secret, nil
}
