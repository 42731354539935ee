package tlsx

import "crypto/x509"

// ClientIdentity returns the identity that a client certificate asserts: the
// first URI SAN, else the first DNS SAN, else the subject common name. It
// returns "" when the certificate carries none of them.
func ClientIdentity(cert *x509.Certificate) string {
	if len(cert.URIs) > 0 {
		return cert.URIs[0].String()
	}
	if len(cert.DNSNames) > 0 {
		return cert.DNSNames[0]
	}
	return cert.Subject.CommonName
}
