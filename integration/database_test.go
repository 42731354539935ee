package integration

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"example.com/rotor/internal/provision"
	"example.com/rotor/internal/testenv"
)

// TestDatabaseUserIsFromVault checks the role model: rotor's sessions log in
// as a user Vault created moments before, which expires, belongs to the
// runtime group and owns no object, and the migration user is gone.
func TestDatabaseUserIsFromVault(t *testing.T) {
	s := startStack(t, provision.Options{})
	client := s.client(t, alice)
	do(t, client, "POST", s.baseURL()+"/v1/notes", "application/json", []byte(`{"title":"t","body":"b"}`))

	ctx := context.Background()
	conn := s.connectAsSuperuser(t)

	rows, err := conn.Query(ctx, `
		SELECT DISTINCT usename FROM pg_stat_activity
		WHERE datname = current_database() AND usename NOT IN ('vault', 'postgres')`)
	if err != nil {
		t.Fatal(err)
	}
	var users []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(users) != 1 || !strings.HasPrefix(users[0], "v-rotor-") {
		t.Fatalf("rotor's sessions log in as %v, want one user named v-rotor-*", users)
	}
	user := users[0]

	var validUntilSet, canLogin, inRuntimeGroup, superuser bool
	err = conn.QueryRow(ctx, `
		SELECT rolvaliduntil IS NOT NULL, rolcanlogin, rolsuper, pg_has_role(rolname, 'rotor_app', 'MEMBER')
		FROM pg_roles WHERE rolname = $1`, user).Scan(&validUntilSet, &canLogin, &superuser, &inRuntimeGroup)
	if err != nil {
		t.Fatalf("look up role %s: %v", user, err)
	}
	if !validUntilSet || !canLogin || superuser || !inRuntimeGroup {
		t.Errorf("role %s: got valid_until_set=%v login=%v superuser=%v in_rotor_app=%v, want true true false true",
			user, validUntilSet, canLogin, superuser, inRuntimeGroup)
	}

	var owned int
	err = conn.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM pg_class WHERE relowner = r.oid)
		     + (SELECT count(*) FROM pg_namespace WHERE nspowner = r.oid)
		     + (SELECT count(*) FROM pg_proc WHERE proowner = r.oid)
		     + (SELECT count(*) FROM pg_type WHERE typowner = r.oid)
		FROM pg_roles r WHERE r.rolname = $1`, user).Scan(&owned)
	if err != nil {
		t.Fatal(err)
	}
	if owned != 0 {
		t.Errorf("role %s owns %d objects, want 0", user, owned)
	}

	var tableOwner string
	if err := conn.QueryRow(ctx, `SELECT tableowner FROM pg_tables WHERE schemaname = 'rotor' AND tablename = 'notes'`).Scan(&tableOwner); err != nil {
		t.Fatal(err)
	}
	if tableOwner != "rotor_owner" {
		t.Errorf("rotor.notes is owned by %s, want rotor_owner", tableOwner)
	}

	var migrationUsers int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-rotor-migrate-%'`).Scan(&migrationUsers); err != nil {
		t.Fatal(err)
	}
	if migrationUsers != 0 {
		t.Errorf("%d migration users remain, want 0: the migration lease is revoked after use", migrationUsers)
	}

	leases, err := s.root.Logical().ListWithContext(ctx, "sys/leases/lookup/database/creds/rotor")
	if err != nil {
		t.Fatal(err)
	}
	if leases == nil || len(leases.Data["keys"].([]any)) != 1 {
		t.Errorf("got Vault leases %v under database/creds/rotor, want exactly one", leases)
	}
}

func TestAdminEndpoints(t *testing.T) {
	s := startStack(t, provision.Options{})
	do(t, s.client(t, alice), "GET", s.baseURL()+"/v1/notes", "", nil)

	cases := []struct {
		path, want string
	}{
		{"/healthz", "ok"},
		{"/readyz", "ready"},
		{"/metrics", `route="/v1/notes"`},
	}
	for _, tc := range cases {
		resp, err := http.Get(s.adminURL() + tc.path)
		if err != nil {
			t.Fatalf("GET %s: %v", tc.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: got status %d, want 200", tc.path, resp.StatusCode)
		}
		if !strings.Contains(string(body), tc.want) {
			t.Errorf("GET %s: body does not contain %q:\n%.500s", tc.path, tc.want, body)
		}
	}
}

// TestProvisionIdempotent runs the Vault configuration a second time on a
// configured Vault, as a second `make up` or a rerun Kubernetes Job does.
// It must succeed and keep the CA, so certificates already issued stay
// trusted.
func TestProvisionIdempotent(t *testing.T) {
	s := startStack(t, provision.Options{})
	ctx := context.Background()

	rootBefore, err := s.root.Logical().ReadWithContext(ctx, provision.RootPKIMount+"/cert/ca")
	if err != nil {
		t.Fatal(err)
	}
	opts := provision.Options{
		DatabaseURL:     "postgresql://{{username}}:{{password}}@" + testenv.PostgresAlias + ":5432/" + testenv.PostgresDB + "?sslmode=disable",
		VaultDBUser:     "vault",
		VaultDBPassword: vaultDBPassword,
		ServerDomains:   []string{"localhost"},
	}
	if err := provision.Configure(ctx, s.root, opts); err != nil {
		t.Fatalf("second Configure: %v", err)
	}

	rootAfter, err := s.root.Logical().ReadWithContext(ctx, provision.RootPKIMount+"/cert/ca")
	if err != nil {
		t.Fatal(err)
	}
	if rootBefore.Data["certificate"] != rootAfter.Data["certificate"] {
		t.Error("the root CA changed on the second run, want it kept")
	}

	// rotor still serves on the stack configured twice.
	status, _, body := do(t, s.client(t, alice), "POST", s.baseURL()+"/v1/notes", "application/json", []byte(`{"title":"t","body":"b"}`))
	if status != http.StatusCreated {
		t.Errorf("create after the second Configure: got status %d, want 201: %s", status, body)
	}
}
