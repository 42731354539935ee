package provision

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// Lifetimes of the two CAs. The intermediate signs every leaf, and a leaf
// cannot outlive it.
const (
	rootCATTL         = 10 * 365 * 24 * time.Hour
	intermediateCATTL = 5 * 365 * 24 * time.Hour
	leafMaxTTL        = 90 * 24 * time.Hour
)

func configurePKI(ctx context.Context, client *vault.Client, opts Options) error {
	if err := enableMount(ctx, client, RootPKIMount, "pki", rootCATTL); err != nil {
		return err
	}
	if err := enableMount(ctx, client, IntermediateMount, "pki", intermediateCATTL); err != nil {
		return err
	}

	if err := ensureRootCA(ctx, client); err != nil {
		return err
	}
	if err := ensureIntermediateCA(ctx, client); err != nil {
		return err
	}
	return configureCertRoles(ctx, client, opts)
}

// hasCA reports whether the PKI mount has an issuer. Reading cert/ca
// instead fails outright on a mount without one.
func hasCA(ctx context.Context, client *vault.Client, mount string) (bool, error) {
	secret, err := client.Logical().ListWithContext(ctx, mount+"/issuers")
	if err != nil {
		return false, fmt.Errorf("list %s/issuers: %w", mount, err)
	}
	if secret == nil {
		return false, nil
	}
	keys, _ := secret.Data["keys"].([]any)
	return len(keys) > 0, nil
}

func ensureRootCA(ctx context.Context, client *vault.Client) error {
	ok, err := hasCA(ctx, client, RootPKIMount)
	if err != nil || ok {
		return err
	}
	_, err = write(ctx, client, RootPKIMount+"/root/generate/internal", map[string]any{
		"common_name": "rotor root CA",
		"key_type":    "ec",
		"key_bits":    256,
		"ttl":         seconds(rootCATTL),
	})
	return err
}

func ensureIntermediateCA(ctx context.Context, client *vault.Client) error {
	ok, err := hasCA(ctx, client, IntermediateMount)
	if err != nil || ok {
		return err
	}

	csr, err := write(ctx, client, IntermediateMount+"/intermediate/generate/internal", map[string]any{
		"common_name": "rotor intermediate CA",
		"key_type":    "ec",
		"key_bits":    256,
	})
	if err != nil {
		return err
	}
	signed, err := write(ctx, client, RootPKIMount+"/root/sign-intermediate", map[string]any{
		"csr":    csr.Data["csr"],
		"format": "pem_bundle",
		"ttl":    seconds(intermediateCATTL),
	})
	if err != nil {
		return err
	}
	_, err = write(ctx, client, IntermediateMount+"/intermediate/set-signed", map[string]any{
		"certificate": signed.Data["certificate"],
	})
	return err
}

// configureCertRoles writes one role for server certificates and one for
// client certificates. Go checks extended key usage along the whole chain,
// so each leaf gets exactly the usage it serves and the CAs get none.
func configureCertRoles(ctx context.Context, client *vault.Client, opts Options) error {
	_, err := write(ctx, client, IntermediateMount+"/roles/"+ServerCertRole, map[string]any{
		"allowed_domains":    opts.ServerDomains,
		"allow_subdomains":   true,
		"allow_bare_domains": true,
		"allow_localhost":    true,
		"allow_ip_sans":      true,
		"server_flag":        true,
		"client_flag":        false,
		"key_type":           "ec",
		"key_bits":           256,
		"max_ttl":            seconds(leafMaxTTL),
	})
	if err != nil {
		return err
	}

	// Client identities are names, not host names: any common name, DNS
	// name or URI SAN may be requested.
	_, err = write(ctx, client, IntermediateMount+"/roles/"+ClientCertRole, map[string]any{
		"allow_any_name":    true,
		"enforce_hostnames": false,
		"allowed_uri_sans":  []string{"*"},
		"allow_ip_sans":     false,
		"server_flag":       false,
		"client_flag":       true,
		"key_type":          "ec",
		"key_bits":          256,
		"max_ttl":           seconds(leafMaxTTL),
	})
	return err
}

// CertificateRequest names the certificate to issue.
type CertificateRequest struct {
	CommonName string
	DNSNames   []string
	IPs        []string
	URIs       []string
	TTL        time.Duration
}

// Certificate is an issued certificate in PEM form.
type Certificate struct {
	// Chain is the leaf followed by the intermediate CA.
	Chain string
	Key   string

	// RootCA is the root that the chain leads to.
	RootCA string
	Serial string
}

// IssueCertificate issues a certificate from role (ServerCertRole or
// ClientCertRole) on the intermediate CA.
func IssueCertificate(ctx context.Context, client *vault.Client, role string, req CertificateRequest) (*Certificate, error) {
	data := map[string]any{
		"common_name":          req.CommonName,
		"alt_names":            strings.Join(req.DNSNames, ","),
		"ip_sans":              strings.Join(req.IPs, ","),
		"uri_sans":             strings.Join(req.URIs, ","),
		"private_key_format":   "pkcs8",
		"exclude_cn_from_sans": true,
	}
	if req.TTL > 0 {
		data["ttl"] = seconds(req.TTL)
	}
	issued, err := write(ctx, client, IntermediateMount+"/issue/"+role, data)
	if err != nil {
		return nil, err
	}

	root, err := client.Logical().ReadWithContext(ctx, RootPKIMount+"/cert/ca")
	if err != nil {
		return nil, fmt.Errorf("read %s/cert/ca: %w", RootPKIMount, err)
	}
	if root == nil {
		return nil, errors.New("the root CA is missing: run Configure first")
	}

	leaf, _ := issued.Data["certificate"].(string)
	issuer, _ := issued.Data["issuing_ca"].(string)
	key, _ := issued.Data["private_key"].(string)
	rootPEM, _ := root.Data["certificate"].(string)
	serial, _ := issued.Data["serial_number"].(string)
	return &Certificate{
		Chain:  strings.TrimSpace(leaf) + "\n" + strings.TrimSpace(issuer) + "\n",
		Key:    strings.TrimSpace(key) + "\n",
		RootCA: strings.TrimSpace(rootPEM) + "\n",
		Serial: serial,
	}, nil
}

// WriteSecretDir writes the certificate in cert-manager's Secret layout:
// tls.crt, tls.key and ca.crt in dir. Each file is written to a temporary
// name and renamed, so a reader never sees half a file.
func (c *Certificate) WriteSecretDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	files := []struct {
		name, content string
		mode          os.FileMode
	}{
		{"ca.crt", c.RootCA, 0o644},
		{"tls.key", c.Key, 0o600},
		{"tls.crt", c.Chain, 0o644},
	}
	for _, f := range files {
		if err := writeFileAtomic(filepath.Join(dir, f.name), f.content, f.mode); err != nil {
			return err
		}
	}
	return nil
}

func writeFileAtomic(path, content string, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), mode); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}
