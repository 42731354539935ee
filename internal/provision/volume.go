package provision

import (
	"fmt"

	"example.com/rotor/internal/secretvolume"
)

// WriteSecretVolume writes the certificate in the layout that the kubelet
// gives a mounted cert-manager Secret: tls.crt, tls.key and ca.crt behind
// the ..data symlink (see package secretvolume). WriteSecretDir replaces
// the three files one after another. WriteSecretVolume replaces all three
// in one step once dir has that layout, and gives it that layout when dir
// contains plain files.
func (c *Certificate) WriteSecretVolume(dir string, opts secretvolume.Options) error {
	files := map[string][]byte{
		"tls.crt": []byte(c.Chain),
		"tls.key": []byte(c.Key),
		"ca.crt":  []byte(c.RootCA),
	}
	if err := secretvolume.Write(dir, files, opts); err != nil {
		return fmt.Errorf("write certificate %s to %s: %w", c.Serial, dir, err)
	}
	return nil
}
