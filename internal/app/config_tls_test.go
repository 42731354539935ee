package app

import (
	"strings"
	"testing"
	"time"

	"example.com/rotor/internal/tlsx"
)

// tlsTestEnv returns the environment of a valid configuration with the
// given variables added.
func tlsTestEnv(extra map[string]string) func(string) string {
	env := map[string]string{"VAULT_TOKEN": "test-token"}
	for name, value := range extra {
		env[name] = value
	}
	return func(name string) string { return env[name] }
}

func TestLoadConfigTLSDefaults(t *testing.T) {
	cfg, err := LoadConfig(tlsTestEnv(nil))
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}

	if cfg.TLSWatch != tlsx.WatchFSNotify {
		t.Errorf("TLSWatch: got %q, want %q", cfg.TLSWatch, tlsx.WatchFSNotify)
	}
	if cfg.TLSPollInterval != 10*time.Second {
		t.Errorf("TLSPollInterval: got %s, want 10s", cfg.TLSPollInterval)
	}
	if got := cfg.AllowedClients.String(); got != "" {
		t.Errorf("AllowedClients: got %q, want empty", got)
	}
	if !cfg.AllowedClients.Allows("spiffe://rotor.local/client/anyone") {
		t.Error("AllowedClients: got a client rejected, want every client allowed")
	}
}

func TestLoadConfigTLSSettings(t *testing.T) {
	cfg, err := LoadConfig(tlsTestEnv(map[string]string{
		"ROTOR_TLS_WATCH":         "poll",
		"ROTOR_TLS_POLL_INTERVAL": "2s",
		"ROTOR_ALLOWED_CLIENTS":   "spiffe://rotor.local/client/reports, spiffe://rotor.local/team/*",
	}))
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}

	if cfg.TLSWatch != tlsx.WatchPoll {
		t.Errorf("TLSWatch: got %q, want %q", cfg.TLSWatch, tlsx.WatchPoll)
	}
	if cfg.TLSPollInterval != 2*time.Second {
		t.Errorf("TLSPollInterval: got %s, want 2s", cfg.TLSPollInterval)
	}
	for identity, want := range map[string]bool{
		"spiffe://rotor.local/client/reports": true,
		"spiffe://rotor.local/team/ops":       true,
		"spiffe://rotor.local/client/other":   false,
	} {
		if got := cfg.AllowedClients.Allows(identity); got != want {
			t.Errorf("AllowedClients.Allows(%q): got %t, want %t", identity, got, want)
		}
	}
}

func TestLoadConfigRejectsInvalidTLSSettings(t *testing.T) {
	tests := []struct {
		name, value string
	}{
		{"ROTOR_TLS_WATCH", "inotify"},
		{"ROTOR_TLS_POLL_INTERVAL", "0s"},
		{"ROTOR_TLS_POLL_INTERVAL", "often"},
		{"ROTOR_ALLOWED_CLIENTS", "spiffe://rotor.local/*/reports"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			_, err := LoadConfig(tlsTestEnv(map[string]string{tt.name: tt.value}))

			if err == nil || !strings.Contains(err.Error(), tt.name) {
				t.Errorf("LoadConfig: got error %v, want one naming %s", err, tt.name)
			}
		})
	}
}
