package provision

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	vault "github.com/hashicorp/vault/api"
)

// Defaults of KubernetesOptions. deploy/kubernetes uses the same names, and
// its test fails when they differ.
const (
	DefaultServiceAccount       = "rotor"
	DefaultTokenAudience        = "vault"
	DefaultIssuerServiceAccount = "rotor-vault-issuer"
	DefaultIssuerName           = "rotor-vault"
)

// issuerTokenTTL bounds the tokens of cert-manager's logins. cert-manager
// logs in again for every certificate request and needs a token only for
// that one request.
const issuerTokenTTL = 60

// KubernetesOptions sets up Vault's Kubernetes auth method. An empty Host
// skips the step; the compose stack and the integration tests leave it empty.
type KubernetesOptions struct {
	// Host is the URL of the Kubernetes API server as Vault reaches it, such
	// as https://kubernetes.default.svc. Vault calls its TokenReview API at
	// each login, but writing the configuration does not contact it (Vault
	// 1.13, checked by TestConfigureKubernetesTwice).
	Host string

	// CACert is the PEM bundle of the CA that signs the API server's
	// certificate. Empty makes Vault read the CA file of its own service
	// account. That file exists only when Vault runs in a pod of the
	// cluster, so elsewhere the configuration write fails without CACert.
	CACert string

	// Namespace is the namespace of rotor's ServiceAccount and of the
	// cert-manager Issuer. Required.
	Namespace string

	// ServiceAccount is rotor's ServiceAccount; default
	// DefaultServiceAccount.
	ServiceAccount string

	// TokenAudience is the audience of rotor's projected service account
	// token, which Vault requires at login; default DefaultTokenAudience.
	TokenAudience string

	// IssuerServiceAccount is the ServiceAccount that cert-manager requests
	// a token for when its Vault Issuer logs in; default
	// DefaultIssuerServiceAccount.
	IssuerServiceAccount string

	// IssuerName is the name of that Issuer. cert-manager sets the token's
	// audience to vault://<namespace>/<issuer name>, and Vault requires it;
	// default DefaultIssuerName.
	IssuerName string
}

func (k *KubernetesOptions) setDefaults() {
	k.ServiceAccount = cmp.Or(k.ServiceAccount, DefaultServiceAccount)
	k.TokenAudience = cmp.Or(k.TokenAudience, DefaultTokenAudience)
	k.IssuerServiceAccount = cmp.Or(k.IssuerServiceAccount, DefaultIssuerServiceAccount)
	k.IssuerName = cmp.Or(k.IssuerName, DefaultIssuerName)
}

// IssuerAudience returns the audience that cert-manager gives the token of
// a namespaced Vault Issuer.
func (k KubernetesOptions) IssuerAudience() string {
	return "vault://" + k.Namespace + "/" + k.IssuerName
}

// issuerPolicyHCL allows signing a CSR with the server certificate role and
// nothing else, so the Issuer can neither read rotor's database credentials
// nor issue client certificates.
var issuerPolicyHCL = fmt.Sprintf(`
path "%s/sign/%s" {
  capabilities = ["update"]
}
`, IntermediateMount, ServerCertRole)

// configureKubernetes enables the Kubernetes auth method, points it at the
// cluster and writes two roles: one for rotor's ServiceAccount with rotor's
// policy, and one for the cert-manager Issuer with IssuerPolicy.
func configureKubernetes(ctx context.Context, client *vault.Client, opts Options) error {
	k := opts.Kubernetes
	if k.Host == "" {
		return nil
	}
	if k.Namespace == "" {
		return errors.New("Kubernetes.Namespace is missing: set it to the namespace of rotor's ServiceAccount")
	}

	auths, err := client.Sys().ListAuthWithContext(ctx)
	if err != nil {
		return fmt.Errorf("list auth methods: %w", err)
	}
	if _, ok := auths[KubernetesMount+"/"]; !ok {
		err := client.Sys().EnableAuthWithOptionsWithContext(ctx, KubernetesMount, &vault.EnableAuthOptions{Type: "kubernetes"})
		if err != nil {
			return fmt.Errorf("enable kubernetes at %s/: %w", KubernetesMount, err)
		}
	}

	_, err = write(ctx, client, "auth/"+KubernetesMount+"/config", map[string]any{
		"kubernetes_host":    k.Host,
		"kubernetes_ca_cert": k.CACert,
	})
	if err != nil {
		return err
	}

	_, err = write(ctx, client, "auth/"+KubernetesMount+"/role/"+KubernetesRole, map[string]any{
		"bound_service_account_names":      []string{k.ServiceAccount},
		"bound_service_account_namespaces": []string{k.Namespace},
		"audience":                         k.TokenAudience,
		"token_policies":                   []string{Policy},
		"token_ttl":                        seconds(opts.TokenTTL),
		"token_max_ttl":                    seconds(opts.TokenMaxTTL),
		"token_type":                       "service",
	})
	if err != nil {
		return err
	}

	if err := client.Sys().PutPolicyWithContext(ctx, IssuerPolicy, issuerPolicyHCL); err != nil {
		return fmt.Errorf("write policy %s: %w", IssuerPolicy, err)
	}
	_, err = write(ctx, client, "auth/"+KubernetesMount+"/role/"+IssuerRole, map[string]any{
		"bound_service_account_names":      []string{k.IssuerServiceAccount},
		"bound_service_account_namespaces": []string{k.Namespace},
		"audience":                         k.IssuerAudience(),
		"token_policies":                   []string{IssuerPolicy},
		"token_ttl":                        issuerTokenTTL,
		"token_max_ttl":                    issuerTokenTTL,
	})
	return err
}
