// Package deploy validates the deployment artifacts: Kubernetes manifests, the Slack app
// manifest, the Grafana dashboard, the Prometheus rules and the Dockerfile. It is a separate
// module so that the Kubernetes, kustomize and Prometheus dependencies stay out of the bot's
// go.mod. Run: cd deploy && go test ./...
package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	kustomizetypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// newObject returns an empty value of the official Go type for apiVersion/kind.
func newObject(apiVersion, kind string) any {
	switch apiVersion + "/" + kind {
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}
	case "v1/Namespace":
		return &corev1.Namespace{}
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}
	case "v1/Secret":
		return &corev1.Secret{}
	case "v1/Service":
		return &corev1.Service{}
	case "v1/PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}
	case "networking.k8s.io/v1/NetworkPolicy":
		return &networkingv1.NetworkPolicy{}
	case "monitoring.coreos.com/v1/PodMonitor":
		return &monitoringv1.PodMonitor{}
	case "monitoring.coreos.com/v1/PrometheusRule":
		return &monitoringv1.PrometheusRule{}
	case "kustomize.config.k8s.io/v1beta1/Kustomization":
		return &kustomizetypes.Kustomization{}
	}
	return nil
}

// splitDocs splits a YAML stream into its non-empty documents.
func splitDocs(b []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() {
		if len(bytes.TrimSpace(stripComments(cur.Bytes()))) > 0 {
			docs = append(docs, bytes.Clone(cur.Bytes()))
		}
		cur.Reset()
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if strings.TrimRight(sc.Text(), " ") == "---" {
			flush()
			continue
		}
		cur.WriteString(sc.Text() + "\n")
	}
	flush()
	return docs
}

func stripComments(b []byte) []byte {
	var out bytes.Buffer
	for line := range strings.Lines(string(b)) {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			out.WriteString(line)
		}
	}
	return out.Bytes()
}

// decodeStrict decodes doc into its official type, rejecting unknown and duplicate fields.
func decodeStrict(t *testing.T, name string, doc []byte) any {
	t.Helper()
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	obj := newObject(tm.APIVersion, tm.Kind)
	if obj == nil {
		t.Fatalf("%s: no Go type registered for %s %s; add it to newObject", name, tm.APIVersion, tm.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		t.Fatalf("%s: %s %s does not decode strictly: %v", name, tm.APIVersion, tm.Kind, err)
	}
	return obj
}

func TestManifestsDecodeStrictly(t *testing.T) {
	files, err := filepath.Glob("k8s/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests under k8s/: %v", err)
	}
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range splitDocs(b) {
			decodeStrict(t, fmt.Sprintf("%s#%d", f, i), doc)
			n++
		}
	}
	if n < 9 {
		t.Errorf("decoded %d documents; want at least 9", n)
	}
	// The decoder must really be strict: a misspelt field is an error.
	bad := []byte("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x}\nautomountServiceAccountTokens: false\n")
	if err := yaml.UnmarshalStrict(bad, &corev1.ServiceAccount{}); err == nil {
		t.Error("UnmarshalStrict accepted an unknown field; the validation above proves nothing")
	}
}

// built is the output of `kustomize build k8s`, decoded.
type built struct {
	deploy *appsv1.Deployment
	sa     *corev1.ServiceAccount
	cm     *corev1.ConfigMap
	pvc    *corev1.PersistentVolumeClaim
	pdb    *policyv1.PodDisruptionBudget
	netpol *networkingv1.NetworkPolicy
	podmon *monitoringv1.PodMonitor
	ns     *corev1.Namespace
	kinds  []string
}

// kustomizeBuild runs `kustomize build k8s` in process (krusty) and decodes the result strictly.
func kustomizeBuild(t *testing.T) built {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), "k8s")
	if err != nil {
		t.Fatalf("kustomize build k8s: %v", err)
	}
	var b built
	for _, r := range rm.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		name := r.GetKind() + "/" + r.GetName()
		b.kinds = append(b.kinds, r.GetKind())
		if r.GetKind() != "Namespace" && r.GetNamespace() != "sessionbot" {
			t.Errorf("%s is in namespace %q; want sessionbot", name, r.GetNamespace())
		}
		switch o := decodeStrict(t, name, y).(type) {
		case *appsv1.Deployment:
			b.deploy = o
		case *corev1.ServiceAccount:
			b.sa = o
		case *corev1.ConfigMap:
			b.cm = o
		case *corev1.PersistentVolumeClaim:
			b.pvc = o
		case *policyv1.PodDisruptionBudget:
			b.pdb = o
		case *networkingv1.NetworkPolicy:
			b.netpol = o
		case *monitoringv1.PodMonitor:
			b.podmon = o
		case *corev1.Namespace:
			b.ns = o
		}
	}
	slices.Sort(b.kinds)
	return b
}

func TestKustomizeBuild(t *testing.T) {
	b := kustomizeBuild(t)
	want := []string{"ConfigMap", "Deployment", "Namespace", "NetworkPolicy", "PersistentVolumeClaim",
		"PodDisruptionBudget", "PodMonitor", "ServiceAccount"}
	if !slices.Equal(b.kinds, want) {
		t.Fatalf("kustomize build kinds = %v; want %v (secrets are created out of band)", b.kinds, want)
	}

	d := b.deploy
	pod := d.Spec.Template
	podLabels := labels.Set(pod.Labels)
	sel := func(what string, ls map[string]string) {
		t.Helper()
		if len(ls) == 0 || !labels.SelectorFromSet(ls).Matches(podLabels) {
			t.Errorf("%s selector %v does not select the pods (labels %v)", what, ls, pod.Labels)
		}
	}
	sel("Deployment", d.Spec.Selector.MatchLabels)
	sel("PodDisruptionBudget", b.pdb.Spec.Selector.MatchLabels)
	sel("NetworkPolicy", b.netpol.Spec.PodSelector.MatchLabels)
	sel("PodMonitor", b.podmon.Spec.Selector.MatchLabels)

	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas = %v; want 2", d.Spec.Replicas)
	}
	ru := d.Spec.Strategy.RollingUpdate
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || ru == nil ||
		*ru.MaxUnavailable != intstr.FromInt32(0) || *ru.MaxSurge != intstr.FromInt32(1) {
		t.Errorf("strategy = %+v; want RollingUpdate maxUnavailable 0, maxSurge 1", d.Spec.Strategy)
	}
	if v := b.pdb.Spec.MinAvailable; v == nil || *v != intstr.FromInt32(1) {
		t.Errorf("PDB minAvailable = %v; want 1", v)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers; want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	if !strings.HasPrefix(c.Image, "ghcr.io/platform-team/sessionbot:") {
		t.Errorf("image = %q; want the kustomize images override applied", c.Image)
	}

	t.Run("restricted pod security", func(t *testing.T) {
		psc := pod.Spec.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot ||
			psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("pod securityContext = %+v; want runAsNonRoot and seccomp RuntimeDefault", psc)
		}
		sc := c.SecurityContext
		if sc == nil {
			t.Fatal("container has no securityContext")
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Error("allowPrivilegeEscalation must be false")
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Error("readOnlyRootFilesystem must be true")
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Error("privileged must not be true")
		}
		if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
			t.Errorf("capabilities = %+v; want drop [ALL], add none", sc.Capabilities)
		}
		for _, uid := range []*int64{psc.RunAsUser, sc.RunAsUser} {
			if uid != nil && *uid == 0 {
				t.Error("runAsUser 0")
			}
		}
		if pod.Spec.HostNetwork || pod.Spec.HostPID || pod.Spec.HostIPC {
			t.Error("host namespaces must not be shared")
		}
		for _, v := range pod.Spec.Volumes {
			if v.HostPath != nil {
				t.Errorf("volume %s is a hostPath", v.Name)
			}
		}
		if b.ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
			t.Errorf("namespace labels = %v; want pod-security enforce=restricted", b.ns.Labels)
		}
	})

	t.Run("service account", func(t *testing.T) {
		if b.sa.AutomountServiceAccountToken == nil || *b.sa.AutomountServiceAccountToken {
			t.Error("ServiceAccount automountServiceAccountToken must be false")
		}
		if pod.Spec.ServiceAccountName != b.sa.Name {
			t.Errorf("serviceAccountName = %q; want %q", pod.Spec.ServiceAccountName, b.sa.Name)
		}
		if pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken {
			t.Error("pod automountServiceAccountToken must be false")
		}
	})

	t.Run("probes and ports", func(t *testing.T) {
		if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 9090 || c.Ports[0].Name != "metrics" {
			t.Fatalf("ports = %+v; want one, metrics 9090", c.Ports)
		}
		probe := func(name string, p *corev1.Probe, path string) {
			if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port != intstr.FromString("metrics") {
				t.Errorf("%s probe = %+v; want GET %s on port metrics", name, p, path)
			}
		}
		probe("liveness", c.LivenessProbe, "/healthz")
		probe("readiness", c.ReadinessProbe, "/readyz")
		if c.ReadinessProbe != nil && c.ReadinessProbe.TimeoutSeconds <= 2 {
			t.Errorf("readiness timeoutSeconds = %d; /readyz may take 2 s, want more", c.ReadinessProbe.TimeoutSeconds)
		}
		ep := b.podmon.Spec.PodMetricsEndpoints
		if len(ep) != 1 || ep[0].Port == nil || *ep[0].Port != "metrics" || ep[0].Path != "/metrics" {
			t.Errorf("PodMonitor endpoints = %+v; want port metrics, path /metrics", ep)
		}
		if got := b.cm.Data["METRICS_ADDR"]; got != ":9090" {
			t.Errorf("METRICS_ADDR = %q; want :9090", got)
		}
	})

	t.Run("environment", func(t *testing.T) {
		if c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
			t.Errorf("resources = %+v; want memory limit and cpu/memory requests", c.Resources)
		}
		env := map[string]corev1.EnvVar{}
		for _, e := range c.Env {
			env[e.Name] = e
		}
		gm := env["GOMEMLIMIT"].ValueFrom
		if gm == nil || gm.ResourceFieldRef == nil || gm.ResourceFieldRef.Resource != "limits.memory" {
			t.Errorf("GOMEMLIMIT = %+v; want resourceFieldRef limits.memory", env["GOMEMLIMIT"])
		}
		for _, s := range []string{"SLACK_APP_TOKEN", "SLACK_BOT_TOKEN", "PAGERDUTY_ROUTING_KEY", "REDIS_URL", "SMTP_URL", "NOTIFY_WEBHOOK_SECRET"} {
			vf := env[s].ValueFrom
			if vf == nil || vf.SecretKeyRef == nil || vf.SecretKeyRef.Key != s {
				t.Errorf("%s = %+v; want it from the Secret", s, env[s])
			}
			if _, ok := b.cm.Data[s]; ok {
				t.Errorf("ConfigMap holds %s, a secret", s)
			}
		}
		if len(c.EnvFrom) != 1 || c.EnvFrom[0].ConfigMapRef == nil || c.EnvFrom[0].ConfigMapRef.Name != b.cm.Name {
			t.Errorf("envFrom = %+v; want the ConfigMap %s", c.EnvFrom, b.cm.Name)
		}
		known := envNamesInCode(t)
		secretLike := regexp.MustCompile(`xox[a-z]-|xapp-|://[^/@]*:[^/@]*@`)
		for k, v := range b.cm.Data {
			if !known[k] {
				t.Errorf("ConfigMap key %s is not a setting the bot reads", k)
			}
			if secretLike.MatchString(v) {
				t.Errorf("ConfigMap %s = %q looks like a secret", k, v)
			}
			if v == "" {
				t.Errorf("ConfigMap %s is empty: set but empty is not the same as unset; leave it out", k)
			}
		}
		for _, k := range []string{"REDIS_CLUSTER_ADDRS", "REDIS_SENTINEL_ADDRS"} {
			if _, ok := b.cm.Data[k]; ok {
				t.Errorf("ConfigMap sets %s as well as REDIS_URL (Secret): two targets stop start-up", k)
			}
		}
	})

	t.Run("storage", func(t *testing.T) {
		if !slices.Contains(b.pvc.Spec.AccessModes, corev1.ReadWriteMany) {
			t.Errorf("PVC access modes = %v; two replicas need ReadWriteMany", b.pvc.Spec.AccessModes)
		}
		var mount string
		for _, v := range pod.Spec.Volumes {
			if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == b.pvc.Name {
				for _, m := range c.VolumeMounts {
					if m.Name == v.Name && !m.ReadOnly {
						mount = m.MountPath
					}
				}
			}
		}
		if mount == "" {
			t.Fatalf("PVC %s is not mounted read-write", b.pvc.Name)
		}
		if dir := b.cm.Data["BACKUP_DIR"]; !strings.HasPrefix(dir, mount+"/") {
			t.Errorf("BACKUP_DIR = %q; want it on the PVC mounted at %s", dir, mount)
		}
	})

	t.Run("network policy", func(t *testing.T) {
		np := b.netpol.Spec
		if !slices.Equal(np.PolicyTypes, []networkingv1.PolicyType{"Ingress", "Egress"}) {
			t.Errorf("policyTypes = %v; want Ingress, Egress", np.PolicyTypes)
		}
		if len(np.Ingress) != 1 || len(np.Ingress[0].From) != 1 || len(np.Ingress[0].Ports) != 1 ||
			np.Ingress[0].Ports[0].Port.IntValue() != 9090 ||
			np.Ingress[0].From[0].NamespaceSelector == nil ||
			np.Ingress[0].From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" {
			t.Errorf("ingress = %+v; want only :9090 from namespace monitoring", np.Ingress)
		}
		ports := map[string]bool{}
		for _, e := range np.Egress {
			for _, p := range e.Ports {
				ports[fmt.Sprintf("%s/%d", *p.Protocol, p.Port.IntValue())] = true
			}
		}
		for _, p := range []string{"UDP/53", "TCP/53", "TCP/6379", "TCP/443", "TCP/587", "TCP/465"} {
			if !ports[p] {
				t.Errorf("egress lacks %s (have %v)", p, ports)
			}
		}
		if len(ports) > 7 {
			t.Errorf("egress allows %v; want DNS, Redis (+Sentinel), HTTPS and SMTP submission only", ports)
		}
	})
}

// envNamesInCode collects the environment variables the main module reads (go-envconfig tags),
// plus the Go runtime's and METRICS_ADDR (SPEC §8).
func envNamesInCode(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{"METRICS_ADDR": true, "GOMEMLIMIT": true, "GOMAXPROCS": true}
	tag := regexp.MustCompile(`env:"([A-Z0-9_]+)`)
	err := filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != ".." && (d.Name() == "deploy" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range tag.FindAllSubmatch(b, -1) {
				names[string(m[1])] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}
