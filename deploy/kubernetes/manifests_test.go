// Package kubernetes_test checks that the manifests in this directory agree
// with rotor's configuration table and with the names that
// internal/provision writes to Vault. It parses the YAML files as they are
// and needs no cluster.
package kubernetes_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"example.com/rotor/internal/app"
	"example.com/rotor/internal/provision"
)

// leaseRevokeTimeout is the time rotor gives revoking its database lease
// after the pool has closed (app.App.close).
const leaseRevokeTimeout = 5 * time.Second

// namespacePlaceholder is the DNS label that kustomization.yaml replaces
// with the namespace.
const namespacePlaceholder = "NAMESPACE"

type kustomization struct {
	Namespace    string
	Resources    []string
	Replacements []struct {
		Targets []struct {
			Select struct {
				Kind string
				Name string
			}
			FieldPaths []string `yaml:"fieldPaths"`
			Options    struct {
				Delimiter string
				Index     int
			}
		}
	}
}

type metadata struct {
	Name   string
	Labels map[string]string
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type deployment struct {
	Metadata metadata
	Spec     struct {
		Replicas int
		Selector labelSelector
		Template struct {
			Metadata metadata
			Spec     podSpec
		}
	}
}

type podSpec struct {
	ServiceAccountName            string `yaml:"serviceAccountName"`
	AutomountServiceAccountToken  *bool  `yaml:"automountServiceAccountToken"`
	TerminationGracePeriodSeconds int    `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               struct {
		RunAsNonRoot bool `yaml:"runAsNonRoot"`
		RunAsUser    int  `yaml:"runAsUser"`
	} `yaml:"securityContext"`
	Containers []container
	Volumes    []volume
}

type container struct {
	Name  string
	Image string
	Ports []struct {
		Name          string
		ContainerPort int `yaml:"containerPort"`
	}
	Env []struct {
		Name      string
		Value     string
		ValueFrom *yaml.Node `yaml:"valueFrom"`
	}
	StartupProbe   *probe `yaml:"startupProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	Lifecycle      struct {
		PreStop struct {
			Exec struct {
				Command []string
			}
		} `yaml:"preStop"`
	}
	Resources struct {
		Requests map[string]string
		Limits   map[string]string
	}
	SecurityContext struct {
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
	} `yaml:"securityContext"`
	VolumeMounts []volumeMount `yaml:"volumeMounts"`
}

type probe struct {
	HTTPGet struct {
		Path string
		Port string // a port name or number, as Kubernetes accepts both
	} `yaml:"httpGet"`
}

type volumeMount struct {
	Name        string
	MountPath   string `yaml:"mountPath"`
	SubPath     string `yaml:"subPath"`
	SubPathExpr string `yaml:"subPathExpr"`
}

type volume struct {
	Name   string
	Secret *struct {
		SecretName string `yaml:"secretName"`
	}
	ConfigMap *struct {
		Name string
	} `yaml:"configMap"`
	Projected *struct {
		Sources []struct {
			ServiceAccountToken *struct {
				Audience          string
				ExpirationSeconds int `yaml:"expirationSeconds"`
				Path              string
			} `yaml:"serviceAccountToken"`
		}
	}
}

type service struct {
	Spec struct {
		Selector map[string]string
		Ports    []struct {
			Name       string
			Port       int
			TargetPort string `yaml:"targetPort"`
		}
	}
}

type networkPolicy struct {
	Spec struct {
		PodSelector labelSelector `yaml:"podSelector"`
		PolicyTypes []string      `yaml:"policyTypes"`
		Ingress     []policyRule
		Egress      []policyRule
	}
}

type policyRule struct {
	Ports []struct {
		Port     int
		Protocol string
	}
}

type podDisruptionBudget struct {
	Spec struct {
		Selector labelSelector
	}
}

type certificate struct {
	Spec struct {
		SecretName string   `yaml:"secretName"`
		CommonName string   `yaml:"commonName"`
		DNSNames   []string `yaml:"dnsNames"`
		PrivateKey struct {
			Algorithm string
			Size      int
		} `yaml:"privateKey"`
		Usages    []string
		IssuerRef struct {
			Kind string
			Name string
		} `yaml:"issuerRef"`
	}
}

type issuer struct {
	Spec struct {
		Vault struct {
			Server            string
			Path              string
			CABundleSecretRef struct {
				Name string
				Key  string
			} `yaml:"caBundleSecretRef"`
			Auth struct {
				Kubernetes struct {
					Role              string
					MountPath         string `yaml:"mountPath"`
					ServiceAccountRef struct {
						Name string
					} `yaml:"serviceAccountRef"`
				}
			}
		}
	}
}

type role struct {
	Rules []struct {
		Resources     []string
		ResourceNames []string `yaml:"resourceNames"`
		Verbs         []string
	}
}

// manifests is every object of the files that kustomization.yaml lists, by
// kind and name.
type manifests map[string]map[string]*yaml.Node

// loadManifests reads kustomization.yaml and every file it lists.
func loadManifests(t *testing.T) (kustomization, manifests) {
	t.Helper()

	var k kustomization
	decodeFile(t, "kustomization.yaml", &k)

	objects := manifests{}
	for _, file := range k.Resources {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("read %s, listed in kustomization.yaml: %v", file, err)
		}
		decoder := yaml.NewDecoder(bytes.NewReader(raw))
		for {
			var doc yaml.Node
			err := decoder.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("parse %s: %v", file, err)
			}
			var head struct {
				Kind     string
				Metadata metadata
			}
			if err := doc.Decode(&head); err != nil {
				t.Fatalf("parse %s: %v", file, err)
			}
			if head.Kind == "" || head.Metadata.Name == "" {
				t.Fatalf("%s: an object without kind or metadata.name", file)
			}
			if objects[head.Kind] == nil {
				objects[head.Kind] = map[string]*yaml.Node{}
			}
			if objects[head.Kind][head.Metadata.Name] != nil {
				t.Fatalf("%s: %s %s is defined twice", file, head.Kind, head.Metadata.Name)
			}
			objects[head.Kind][head.Metadata.Name] = &doc
		}
	}
	return k, objects
}

func decodeFile(t *testing.T, file string, v any) {
	t.Helper()

	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("read %s: %v", file, err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("parse %s: %v", file, err)
	}
}

// get decodes the object of kind and name into v.
func (m manifests) get(t *testing.T, kind, name string, v any) {
	t.Helper()

	node := m[kind][name]
	if node == nil {
		t.Fatalf("no %s named %s in the manifests", kind, name)
	}
	if err := node.Decode(v); err != nil {
		t.Fatalf("decode %s %s: %v", kind, name, err)
	}
}

// only decodes the single object of kind into v and returns its name.
func (m manifests) only(t *testing.T, kind string, v any) string {
	t.Helper()

	if len(m[kind]) != 1 {
		t.Fatalf("%s objects: got %d, want 1", kind, len(m[kind]))
	}
	for name := range m[kind] {
		m.get(t, kind, name, v)
		return name
	}
	return ""
}

// rotorDeployment returns the Deployment, its rotor container, and the
// configuration that rotor would load from the container's environment.
func rotorDeployment(t *testing.T, m manifests) (deployment, container, app.Config) {
	t.Helper()

	var d deployment
	m.get(t, "Deployment", "rotor", &d)
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("containers in the Deployment: got %d, want 1", len(d.Spec.Template.Spec.Containers))
	}
	c := d.Spec.Template.Spec.Containers[0]

	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	cfg, err := app.LoadConfig(func(name string) string { return env[name] })
	if err != nil {
		t.Fatalf("the Deployment's environment is not a valid configuration: %v", err)
	}
	return d, c, cfg
}

func TestKustomizationListsEveryManifest(t *testing.T) {
	var k kustomization
	decodeFile(t, "kustomization.yaml", &k)

	if k.Namespace == "" {
		t.Error("kustomization.yaml sets no namespace")
	}
	for _, file := range k.Resources {
		if _, err := os.Stat(file); err != nil {
			t.Errorf("kustomization.yaml lists %s: %v", file, err)
		}
	}

	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		if file != "kustomization.yaml" && !slices.Contains(k.Resources, file) {
			t.Errorf("%s is not listed in kustomization.yaml, so kubectl apply -k skips it", file)
		}
	}
}

func TestDeploymentEnvMatchesConfig(t *testing.T) {
	_, objects := loadManifests(t)
	var d deployment
	objects.get(t, "Deployment", "rotor", &d)

	known := app.VariableNames()
	seen := map[string]bool{}
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, e := range c.Env {
			if !slices.Contains(known, e.Name) {
				t.Errorf("env %s is not a setting of internal/app (server -help lists them)", e.Name)
			}
			if e.ValueFrom != nil {
				t.Errorf("env %s uses valueFrom; this test checks only literal values", e.Name)
			}
			if seen[e.Name] {
				t.Errorf("env %s is set twice", e.Name)
			}
			seen[e.Name] = true
		}
	}

	_, _, cfg := rotorDeployment(t, objects)
	if cfg.VaultAuth != "kubernetes" {
		t.Errorf("ROTOR_VAULT_AUTH: got %q, want kubernetes", cfg.VaultAuth)
	}
	if cfg.KubernetesRole != provision.KubernetesRole {
		t.Errorf("ROTOR_VAULT_K8S_ROLE: got %q, want %q, the role internal/provision writes", cfg.KubernetesRole, provision.KubernetesRole)
	}
	if cfg.KubernetesMount != provision.KubernetesMount {
		t.Errorf("ROTOR_VAULT_K8S_MOUNT: got %q, want %q", cfg.KubernetesMount, provision.KubernetesMount)
	}
	if cfg.DatabaseMount != provision.DatabaseMount || cfg.DatabaseRole != provision.RuntimeRole || cfg.MigrationRole != provision.MigrationRole {
		t.Errorf("database mount and roles: got %s, %s, %s, want %s, %s, %s",
			cfg.DatabaseMount, cfg.DatabaseRole, cfg.MigrationRole,
			provision.DatabaseMount, provision.RuntimeRole, provision.MigrationRole)
	}
}

func TestPortsAgree(t *testing.T) {
	_, objects := loadManifests(t)
	_, c, cfg := rotorDeployment(t, objects)

	containerPorts := map[string]int{}
	for _, p := range c.Ports {
		containerPorts[p.Name] = p.ContainerPort
	}
	apiPort := addrPort(t, "ROTOR_LISTEN_ADDR", cfg.ListenAddr)
	adminPort := addrPort(t, "ROTOR_ADMIN_ADDR", cfg.AdminAddr)
	if containerPorts["https"] != apiPort {
		t.Errorf("container port https: got %d, want %d from ROTOR_LISTEN_ADDR", containerPorts["https"], apiPort)
	}
	if containerPorts["admin"] != adminPort {
		t.Errorf("container port admin: got %d, want %d from ROTOR_ADMIN_ADDR", containerPorts["admin"], adminPort)
	}

	probes := []struct {
		name  string
		probe *probe
		path  string
	}{
		{"startupProbe", c.StartupProbe, "/healthz"},
		{"livenessProbe", c.LivenessProbe, "/healthz"},
		{"readinessProbe", c.ReadinessProbe, "/readyz"},
	}
	for _, p := range probes {
		if p.probe == nil {
			t.Errorf("%s is missing", p.name)
			continue
		}
		if p.probe.HTTPGet.Path != p.path {
			t.Errorf("%s path: got %q, want %q", p.name, p.probe.HTTPGet.Path, p.path)
		}
		if got := resolvePort(t, containerPorts, p.probe.HTTPGet.Port); got != adminPort {
			t.Errorf("%s port: got %d, want the admin port %d", p.name, got, adminPort)
		}
	}

	var svc service
	objects.get(t, "Service", "rotor", &svc)
	if len(svc.Spec.Ports) != 1 {
		t.Fatalf("Service ports: got %d, want 1, the API", len(svc.Spec.Ports))
	}
	if got := resolvePort(t, containerPorts, svc.Spec.Ports[0].TargetPort); got != apiPort {
		t.Errorf("Service targetPort: got %d, want the API port %d", got, apiPort)
	}

	var policy networkPolicy
	objects.get(t, "NetworkPolicy", "rotor", &policy)
	ingress := rulePorts(policy.Spec.Ingress)
	for _, want := range []string{portKey(apiPort, "TCP"), portKey(adminPort, "TCP")} {
		if !slices.Contains(ingress, want) {
			t.Errorf("NetworkPolicy ingress ports %v: want %s", ingress, want)
		}
	}
	if len(ingress) != 2 {
		t.Errorf("NetworkPolicy ingress ports: got %v, want only the API and admin ports", ingress)
	}
}

func TestNetworkPolicyEgress(t *testing.T) {
	_, objects := loadManifests(t)
	_, _, cfg := rotorDeployment(t, objects)

	var policy networkPolicy
	objects.get(t, "NetworkPolicy", "rotor", &policy)
	if !slices.Equal(policy.Spec.PolicyTypes, []string{"Ingress", "Egress"}) {
		t.Errorf("NetworkPolicy policyTypes: got %v, want [Ingress Egress]", policy.Spec.PolicyTypes)
	}

	egress := rulePorts(policy.Spec.Egress)
	want := []string{
		portKey(urlPort(t, "ROTOR_DATABASE_URL", cfg.DatabaseURL, 5432), "TCP"),
		portKey(urlPort(t, "VAULT_ADDR", cfg.VaultAddr, 8200), "TCP"),
		portKey(53, "UDP"),
		portKey(53, "TCP"),
	}
	slices.Sort(egress)
	slices.Sort(want)
	if !slices.Equal(egress, want) {
		t.Errorf("NetworkPolicy egress ports: got %v, want %v (Postgres, Vault, DNS)", egress, want)
	}
}

func TestCertificateVolumes(t *testing.T) {
	_, objects := loadManifests(t)
	d, c, cfg := rotorDeployment(t, objects)
	volumes := map[string]volume{}
	for _, v := range d.Spec.Template.Spec.Volumes {
		volumes[v.Name] = v
	}

	// No Secret, ConfigMap or projected volume may be mounted with a
	// subPath, because such a mount never receives the kubelet's updates.
	for _, m := range c.VolumeMounts {
		v := volumes[m.Name]
		if v.Secret == nil && v.ConfigMap == nil && v.Projected == nil {
			continue
		}
		if m.SubPath != "" || m.SubPathExpr != "" {
			t.Errorf("volume %s is mounted with a subPath", m.Name)
		}
	}

	// Each file rotor reads lies directly in the directory of a mount,
	// where the kubelet puts a Secret's or ConfigMap's keys.
	files := map[string]string{
		"ROTOR_TLS_DIR/tls.crt": path.Join(cfg.TLSDir, "tls.crt"),
		"ROTOR_TLS_DIR/tls.key": path.Join(cfg.TLSDir, "tls.key"),
		"ROTOR_TLS_DIR/ca.crt":  path.Join(cfg.TLSDir, "ca.crt"),
		"ROTOR_CLIENT_CA_FILE":  cfg.ClientCAFile,
		"VAULT_CACERT":          cfg.VaultCACert,
	}
	for name, file := range files {
		if file == "" {
			t.Errorf("%s is empty", name)
			continue
		}
		if m := mountOf(c, file); m == nil {
			t.Errorf("%s %s is not in a mounted volume's directory", name, file)
		}
	}

	var cert certificate
	certName := objects.only(t, "Certificate", &cert)
	tlsMount := mountOf(c, path.Join(cfg.TLSDir, "tls.crt"))
	if tlsMount == nil {
		t.FailNow()
	}
	if got := secretName(volumes[tlsMount.Name]); got != cert.Spec.SecretName {
		t.Errorf("Secret of the volume at ROTOR_TLS_DIR: got %q, want %q, the secretName of Certificate %s", got, cert.Spec.SecretName, certName)
	}

	clientCAMount := mountOf(c, cfg.ClientCAFile)
	if clientCAMount != nil && clientCAMount.Name == tlsMount.Name {
		t.Errorf("ROTOR_CLIENT_CA_FILE is in the server certificate's volume, want a trust bundle volume of its own")
	}

	var iss issuer
	objects.get(t, "Issuer", cert.Spec.IssuerRef.Name, &iss)
	vaultCAMount := mountOf(c, cfg.VaultCACert)
	if vaultCAMount != nil {
		ref := iss.Spec.Vault.CABundleSecretRef
		if secretName(volumes[vaultCAMount.Name]) != ref.Name || path.Base(cfg.VaultCACert) != ref.Key {
			t.Errorf("VAULT_CACERT %s: want key %s of the Secret %s, which the Issuer trusts", cfg.VaultCACert, ref.Key, ref.Name)
		}
	}
}

func TestVaultTokenVolume(t *testing.T) {
	_, objects := loadManifests(t)
	d, c, cfg := rotorDeployment(t, objects)
	pod := d.Spec.Template.Spec

	if pod.ServiceAccountName != provision.DefaultServiceAccount {
		t.Errorf("serviceAccountName: got %q, want %q, the account Vault's role is bound to", pod.ServiceAccountName, provision.DefaultServiceAccount)
	}
	var sa struct{}
	objects.get(t, "ServiceAccount", pod.ServiceAccountName, &sa)
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken: want false; rotor needs only the projected Vault token")
	}

	m := mountOf(c, cfg.KubernetesTokenPath)
	if m == nil {
		t.Fatalf("ROTOR_VAULT_K8S_TOKEN_PATH %s is not in a mounted volume", cfg.KubernetesTokenPath)
	}
	var token *volume
	for i, v := range pod.Volumes {
		if v.Name == m.Name {
			token = &pod.Volumes[i]
		}
	}
	if token == nil || token.Projected == nil || len(token.Projected.Sources) != 1 || token.Projected.Sources[0].ServiceAccountToken == nil {
		t.Fatalf("volume %s: want a projected volume with one serviceAccountToken source", m.Name)
	}
	source := token.Projected.Sources[0].ServiceAccountToken
	if got := path.Join(m.MountPath, source.Path); got != cfg.KubernetesTokenPath {
		t.Errorf("token file: got %s, want ROTOR_VAULT_K8S_TOKEN_PATH %s", got, cfg.KubernetesTokenPath)
	}
	if source.Audience != provision.DefaultTokenAudience {
		t.Errorf("token audience: got %q, want %q, the audience Vault's role requires", source.Audience, provision.DefaultTokenAudience)
	}
	// The API server rejects expirations under 10 minutes.
	if source.ExpirationSeconds < 600 {
		t.Errorf("token expirationSeconds: got %d, want at least 600", source.ExpirationSeconds)
	}
}

func TestIssuerMatchesProvision(t *testing.T) {
	_, objects := loadManifests(t)

	var cert certificate
	objects.only(t, "Certificate", &cert)
	if cert.Spec.IssuerRef.Kind != "Issuer" || cert.Spec.IssuerRef.Name != provision.DefaultIssuerName {
		t.Errorf("Certificate issuerRef: got %s %s, want Issuer %s, the name in the Vault role's audience",
			cert.Spec.IssuerRef.Kind, cert.Spec.IssuerRef.Name, provision.DefaultIssuerName)
	}
	if !slices.Contains(cert.Spec.Usages, "server auth") || slices.Contains(cert.Spec.Usages, "client auth") {
		t.Errorf("Certificate usages: got %v, want server auth and not client auth", cert.Spec.Usages)
	}
	if cert.Spec.PrivateKey.Algorithm != "ECDSA" || cert.Spec.PrivateKey.Size != 256 {
		t.Errorf("Certificate privateKey: got %s %d, want ECDSA 256, the only key Vault's server role signs",
			cert.Spec.PrivateKey.Algorithm, cert.Spec.PrivateKey.Size)
	}

	var iss issuer
	objects.get(t, "Issuer", provision.DefaultIssuerName, &iss)
	vault := iss.Spec.Vault
	if want := provision.IntermediateMount + "/sign/" + provision.ServerCertRole; vault.Path != want {
		t.Errorf("Issuer path: got %q, want %q", vault.Path, want)
	}
	if vault.Auth.Kubernetes.Role != provision.IssuerRole {
		t.Errorf("Issuer Kubernetes role: got %q, want %q", vault.Auth.Kubernetes.Role, provision.IssuerRole)
	}
	if want := "/v1/auth/" + provision.KubernetesMount; vault.Auth.Kubernetes.MountPath != want {
		t.Errorf("Issuer mountPath: got %q, want %q", vault.Auth.Kubernetes.MountPath, want)
	}
	account := vault.Auth.Kubernetes.ServiceAccountRef.Name
	if account != provision.DefaultIssuerServiceAccount {
		t.Errorf("Issuer serviceAccountRef: got %q, want %q", account, provision.DefaultIssuerServiceAccount)
	}
	var sa struct{}
	objects.get(t, "ServiceAccount", account, &sa)

	// cert-manager may request tokens for the Issuer's ServiceAccount only.
	tokenRequestAllowed := false
	for name := range objects["Role"] {
		var r role
		objects.get(t, "Role", name, &r)
		for _, rule := range r.Rules {
			if slices.Contains(rule.Resources, "serviceaccounts/token") && slices.Contains(rule.Verbs, "create") &&
				slices.Equal(rule.ResourceNames, []string{account}) {
				tokenRequestAllowed = true
			}
		}
	}
	if !tokenRequestAllowed {
		t.Errorf("no Role allows creating tokens for exactly the ServiceAccount %s", account)
	}
}

func TestCertificateNamesFollowNamespace(t *testing.T) {
	k, objects := loadManifests(t)
	var cert certificate
	name := objects.only(t, "Certificate", &cert)

	replaced := map[string]bool{}
	for _, r := range k.Replacements {
		for _, target := range r.Targets {
			if target.Select.Kind != "Certificate" || target.Select.Name != name {
				continue
			}
			if target.Options.Delimiter != "." || target.Options.Index != 1 {
				t.Errorf("replacement options: got %q index %d, want the second dot-separated label", target.Options.Delimiter, target.Options.Index)
			}
			for _, p := range target.FieldPaths {
				replaced[p] = true
			}
		}
	}

	fields := map[string]string{"spec.commonName": cert.Spec.CommonName}
	for i, dnsName := range cert.Spec.DNSNames {
		fields["spec.dnsNames."+strconv.Itoa(i)] = dnsName
	}
	for field, value := range fields {
		labels := strings.Split(value, ".")
		hasPlaceholder := len(labels) > 1 && labels[1] == namespacePlaceholder
		if hasPlaceholder != replaced[field] {
			t.Errorf("%s %q: placeholder %v, replaced by kustomization.yaml %v; want both or neither", field, value, hasPlaceholder, replaced[field])
		}
	}
	for field := range replaced {
		if _, ok := fields[field]; !ok {
			t.Errorf("kustomization.yaml replaces %s, which the Certificate does not have", field)
		}
	}
}

func TestGracefulTermination(t *testing.T) {
	_, objects := loadManifests(t)
	d, c, cfg := rotorDeployment(t, objects)

	var preStop time.Duration
	if command := c.Lifecycle.PreStop.Exec.Command; len(command) > 0 {
		if len(command) != 2 || command[0] != "sleep" {
			t.Fatalf("preStop command: got %v, want [sleep SECONDS]", command)
		}
		seconds, err := strconv.Atoi(command[1])
		if err != nil {
			t.Fatalf("preStop sleep %q: %v", command[1], err)
		}
		preStop = time.Duration(seconds) * time.Second
	}

	grace := time.Duration(d.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	need := preStop + cfg.ShutdownTimeout + leaseRevokeTimeout
	if grace < need {
		t.Errorf("terminationGracePeriodSeconds: got %s, want at least %s (preStop %s, ROTOR_SHUTDOWN_TIMEOUT %s, lease revocation %s)",
			grace, need, preStop, cfg.ShutdownTimeout, leaseRevokeTimeout)
	}
}

func TestDeploymentHardening(t *testing.T) {
	_, objects := loadManifests(t)
	d, c, _ := rotorDeployment(t, objects)
	pod := d.Spec.Template.Spec

	if d.Spec.Replicas != 2 {
		t.Errorf("replicas: got %d, want 2", d.Spec.Replicas)
	}
	if !pod.SecurityContext.RunAsNonRoot || pod.SecurityContext.RunAsUser == 0 {
		t.Errorf("pod securityContext: got runAsNonRoot %v, runAsUser %d, want a non-root user",
			pod.SecurityContext.RunAsNonRoot, pod.SecurityContext.RunAsUser)
	}
	if !c.SecurityContext.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem: want true")
	}
	if p := c.SecurityContext.AllowPrivilegeEscalation; p == nil || *p {
		t.Error("allowPrivilegeEscalation: want false")
	}
	for _, resource := range []string{"cpu", "memory"} {
		if c.Resources.Requests[resource] == "" {
			t.Errorf("resources.requests.%s is missing", resource)
		}
		if c.Resources.Limits[resource] == "" {
			t.Errorf("resources.limits.%s is missing", resource)
		}
	}
}

func TestSelectorsMatchPods(t *testing.T) {
	_, objects := loadManifests(t)
	d, _, _ := rotorDeployment(t, objects)
	podLabels := d.Spec.Template.Metadata.Labels

	var svc service
	objects.get(t, "Service", "rotor", &svc)
	var pdb podDisruptionBudget
	objects.only(t, "PodDisruptionBudget", &pdb)
	var policy networkPolicy
	objects.get(t, "NetworkPolicy", "rotor", &policy)

	selectors := map[string]map[string]string{
		"Deployment selector":    d.Spec.Selector.MatchLabels,
		"Service selector":       svc.Spec.Selector,
		"PodDisruptionBudget":    pdb.Spec.Selector.MatchLabels,
		"NetworkPolicy selector": policy.Spec.PodSelector.MatchLabels,
	}
	for name, selector := range selectors {
		if len(selector) == 0 {
			t.Errorf("%s is empty, want rotor's pod labels", name)
		}
		for key, value := range selector {
			if podLabels[key] != value {
				t.Errorf("%s %s=%s does not match the pod labels %v", name, key, value, podLabels)
			}
		}
	}
}

// secretName returns the Secret of a Secret volume, or "" for another kind
// of volume.
func secretName(v volume) string {
	if v.Secret == nil {
		return ""
	}
	return v.Secret.SecretName
}

// mountOf returns the volume mount whose directory contains file directly.
func mountOf(c container, file string) *volumeMount {
	for i, m := range c.VolumeMounts {
		if path.Dir(file) == path.Clean(m.MountPath) {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

// resolvePort returns the number of a port given by name or number.
func resolvePort(t *testing.T, named map[string]int, port string) int {
	t.Helper()

	if n, err := strconv.Atoi(port); err == nil {
		return n
	}
	n, ok := named[port]
	if !ok {
		t.Errorf("port %q names no container port", port)
	}
	return n
}

func addrPort(t *testing.T, name, addr string) int {
	t.Helper()

	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, addr, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("%s=%q: want a numeric port", name, addr)
	}
	return n
}

// urlPort returns the port of rawURL, or defaultPort when it has none.
func urlPort(t *testing.T, name, rawURL string, defaultPort int) int {
	t.Helper()

	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, rawURL, err)
	}
	if u.Port() == "" {
		return defaultPort
	}
	n, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatalf("%s=%q: want a numeric port", name, rawURL)
	}
	return n
}

func rulePorts(rules []policyRule) []string {
	var ports []string
	for _, rule := range rules {
		for _, p := range rule.Ports {
			ports = append(ports, portKey(p.Port, p.Protocol))
		}
	}
	return ports
}

func portKey(port int, protocol string) string {
	return strconv.Itoa(port) + "/" + protocol
}
