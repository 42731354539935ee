package tlsxtest_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"example.com/rotor/internal/tlsx"
	"example.com/rotor/internal/tlsx/tlsxtest"
)

// readPEMBlocks returns the PEM blocks in the file at path.
func readPEMBlocks(t testing.TB, path string) []*pem.Block {
	t.Helper()

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []*pem.Block
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return blocks
		}
		blocks = append(blocks, block)
	}
}

func TestWriteSecretDirLayout(t *testing.T) {
	root := tlsxtest.NewCA(t, "root CA")
	intermediate := root.NewIntermediate(t, "intermediate CA")
	pair := intermediate.IssueServer(t, "localhost", "127.0.0.1")
	dir := filepath.Join(t.TempDir(), "secret")

	tlsxtest.WriteSecretDir(t, dir, pair, intermediate)

	chain := readPEMBlocks(t, filepath.Join(dir, tlsx.CertFile))
	if len(chain) != 2 {
		t.Fatalf("PEM blocks in %s: got %d, want 2 (leaf and intermediate)", tlsx.CertFile, len(chain))
	}
	if string(chain[0].Bytes) != string(pair.Cert.Raw) {
		t.Errorf("first block of %s: got another certificate, want the leaf", tlsx.CertFile)
	}
	if string(chain[1].Bytes) != string(intermediate.Cert.Raw) {
		t.Errorf("second block of %s: got another certificate, want the intermediate", tlsx.CertFile)
	}

	roots := readPEMBlocks(t, filepath.Join(dir, tlsx.CAFile))
	if len(roots) != 1 || string(roots[0].Bytes) != string(root.Cert.Raw) {
		t.Errorf("%s: got %d blocks, want only the root certificate", tlsx.CAFile, len(roots))
	}

	keys := readPEMBlocks(t, filepath.Join(dir, tlsx.KeyFile))
	if len(keys) != 1 || keys[0].Type != "PRIVATE KEY" {
		t.Fatalf("%s: got %d blocks, want one PKCS#8 PRIVATE KEY block", tlsx.KeyFile, len(keys))
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(dir, tlsx.CertFile), filepath.Join(dir, tlsx.KeyFile)); err != nil {
		t.Errorf("LoadX509KeyPair: %v", err)
	}
}

func TestIssueServerSANs(t *testing.T) {
	ca := tlsxtest.NewCA(t, "root CA")

	pair := ca.IssueServer(t, "localhost", "127.0.0.1", "::1")

	if got := pair.Cert.DNSNames; len(got) != 1 || got[0] != "localhost" {
		t.Errorf("DNSNames: got %q, want [localhost]", got)
	}
	if got := len(pair.Cert.IPAddresses); got != 2 {
		t.Errorf("IPAddresses: got %d, want 2", got)
	}
	if got := pair.Cert.Subject.CommonName; got != "localhost" {
		t.Errorf("CommonName: got %q, want %q", got, "localhost")
	}
	if err := pair.Cert.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("VerifyHostname(127.0.0.1): %v", err)
	}
	opts := x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if _, err := pair.Cert.Verify(opts); err != nil {
		t.Errorf("Verify for server auth: %v", err)
	}
}

func TestIssueKeepsCAChain(t *testing.T) {
	root := tlsxtest.NewCA(t, "root CA")
	intermediate := root.NewIntermediate(t, "intermediate CA")
	first := intermediate.IssueServer(t, "localhost")

	// Changing one key pair's slice must not change what later pairs get.
	first.Intermediates[0] = first.Cert
	second := intermediate.IssueServer(t, "localhost")

	if got := intermediate.Root(); got != root.Cert {
		t.Errorf("Root: got %q, want %q", got.Subject.CommonName, root.Cert.Subject.CommonName)
	}
	if got := second.Intermediates[0]; got != intermediate.Cert {
		t.Errorf("Intermediates[0]: got %q, want %q", got.Subject.CommonName, intermediate.Cert.Subject.CommonName)
	}
}
