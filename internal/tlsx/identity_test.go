package tlsx_test

import (
	"crypto/x509"
	"testing"

	"example.com/rotor/internal/tlsx"
	"example.com/rotor/internal/tlsx/tlsxtest"
)

func TestClientIdentity(t *testing.T) {
	ca := tlsxtest.NewCA(t, "identity test CA")
	clientAuth := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}

	tests := []struct {
		name string
		leaf tlsxtest.Leaf
		want string
	}{
		{
			name: "URI SAN wins over DNS SAN and CN",
			leaf: tlsxtest.Leaf{
				CommonName: "cn-client",
				DNSNames:   []string{"dns-client.example"},
				URIs:       []string{"spiffe://rotor.example/client/alice"},
			},
			want: "spiffe://rotor.example/client/alice",
		},
		{
			name: "first of several URI SANs",
			leaf: tlsxtest.Leaf{URIs: []string{"spiffe://rotor.example/a", "spiffe://rotor.example/b"}},
			want: "spiffe://rotor.example/a",
		},
		{
			name: "DNS SAN wins over CN",
			leaf: tlsxtest.Leaf{CommonName: "cn-client", DNSNames: []string{"dns-client.example"}},
			want: "dns-client.example",
		},
		{
			name: "first of several DNS SANs",
			leaf: tlsxtest.Leaf{DNSNames: []string{"first.example", "second.example"}},
			want: "first.example",
		},
		{
			name: "CN only",
			leaf: tlsxtest.Leaf{CommonName: "cn-client"},
			want: "cn-client",
		},
		{
			name: "no identity",
			leaf: tlsxtest.Leaf{},
			want: "",
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.leaf.ExtKeyUsage = clientAuth
			pair := ca.Issue(t, tt.leaf)

			if got := tlsx.ClientIdentity(pair.Cert); got != tt.want {
				t.Errorf("ClientIdentity: got %q, want %q", got, tt.want)
			}
		})
	}
}
