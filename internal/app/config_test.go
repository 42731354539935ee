package app

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestLoadConfigDefaults(t *testing.T) {
	cfg, err := LoadConfig(tlsTestEnv(nil))
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}

	if cfg.ListenAddr != ":8443" || cfg.AdminAddr != ":9090" {
		t.Errorf("addresses: got %q and %q, want :8443 and :9090", cfg.ListenAddr, cfg.AdminAddr)
	}
	if cfg.DBMaxConns != 10 {
		t.Errorf("DBMaxConns: got %d, want 10", cfg.DBMaxConns)
	}
	if cfg.ShutdownTimeout != 20*time.Second {
		t.Errorf("ShutdownTimeout: got %s, want 20s", cfg.ShutdownTimeout)
	}
	if cfg.VaultAuth != "token" || cfg.DatabaseRole != "rotor" || cfg.MigrationRole != "rotor-migrate" {
		t.Errorf("vault settings: got auth %q, role %q, migration role %q", cfg.VaultAuth, cfg.DatabaseRole, cfg.MigrationRole)
	}
}

// TestLoadConfigInvalid checks that each invalid value is reported with the
// variable's name and a hint, and that every one is reported at once.
func TestLoadConfigInvalid(t *testing.T) {
	cases := []struct {
		name, value string
		want        string
	}{
		{"ROTOR_DATABASE_URL", "postgres://rotor:secret@db:5432/rotor", "remove the user and password"},
		{"ROTOR_DATABASE_URL", "mysql://db/rotor", "want a URL such as postgres://"},
		{"ROTOR_DB_MAX_CONNS", "0", "want a whole number of at least 1"},
		{"ROTOR_DB_MAX_CONNS", "many", "want a whole number of at least 1"},
		{"ROTOR_VAULT_AUTH", "ldap", "want token, approle or kubernetes"},
		{"ROTOR_SHUTDOWN_TIMEOUT", "-1s", "want a positive duration"},
		{"ROTOR_LOG_LEVEL", "loud", "want debug, info, warn or error"},
		{"ROTOR_LOG_FORMAT", "xml", "want json or text"},
	}
	for _, tc := range cases {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			_, err := LoadConfig(tlsTestEnv(map[string]string{tc.name: tc.value}))
			if err == nil {
				t.Fatal("got no error, want one")
			}
			if !strings.Contains(err.Error(), tc.name) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q, want it to name %s and say %q", err, tc.name, tc.want)
			}
		})
	}

	_, err := LoadConfig(tlsTestEnv(map[string]string{"ROTOR_DB_MAX_CONNS": "0", "ROTOR_LOG_FORMAT": "xml"}))
	if err == nil || !strings.Contains(err.Error(), "ROTOR_DB_MAX_CONNS") || !strings.Contains(err.Error(), "ROTOR_LOG_FORMAT") {
		t.Errorf("got %v, want both invalid variables reported", err)
	}
}

func TestLoadConfigAuthRequirements(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"token without VAULT_TOKEN", map[string]string{"VAULT_TOKEN": ""}, "VAULT_TOKEN is empty"},
		{"approle without role id", map[string]string{"ROTOR_VAULT_AUTH": "approle", "ROTOR_APPROLE_SECRET_ID": "s"}, "ROTOR_APPROLE_ROLE_ID"},
		{"approle without secret id", map[string]string{"ROTOR_VAULT_AUTH": "approle", "ROTOR_APPROLE_ROLE_ID": "r"}, "ROTOR_APPROLE_SECRET_ID"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadConfig(tlsTestEnv(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error mentioning %s", err, tc.want)
			}
		})
	}

	_, err := LoadConfig(tlsTestEnv(map[string]string{"ROTOR_VAULT_AUTH": "kubernetes"}))
	if err != nil {
		t.Errorf("kubernetes auth with defaults: got %v, want no error", err)
	}
}

func TestPrintHelpListsEverySetting(t *testing.T) {
	var out bytes.Buffer
	PrintHelp(&out)

	for _, s := range settings {
		if !strings.Contains(out.String(), s.name) {
			t.Errorf("help does not list %s", s.name)
		}
	}
}

func TestLogAttrsOmitSecrets(t *testing.T) {
	cfg, err := LoadConfig(tlsTestEnv(map[string]string{
		"VAULT_TOKEN":             "s.very-secret-token",
		"ROTOR_APPROLE_SECRET_ID": "secret-id-value",
	}))
	if err != nil {
		t.Fatal(err)
	}

	line := fmt.Sprint(cfg.LogAttrs()...)
	for _, secret := range []string{"s.very-secret-token", "secret-id-value"} {
		if strings.Contains(line, secret) {
			t.Errorf("start-up log attributes contain %q", secret)
		}
	}
}
