package kubernetes

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	k8s "k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/alternatefutures/af-builder/functions/dispatch/executor"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes/kubeclient"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes/kubetest"
)

const infraDir = "../../../../infra/k8s/"

// infraObjects decodes infra/k8s manifests and moves them from af-builds
// into namespace ns, so each test gets its own copy.
func infraObjects(t *testing.T, ns string, files ...string) []client.Object {
	t.Helper()
	var objs []client.Object
	for _, f := range files {
		objs = append(objs, kubetest.DecodeManifests(t, infraDir+f)...)
	}
	for _, obj := range objs {
		switch o := obj.(type) {
		case *corev1.Namespace:
			if o.Name != "af-builds" {
				t.Fatalf("%s: unexpected namespace %s", files, o.Name)
			}
			o.Name = ns
		case *rbacv1.RoleBinding:
			for i := range o.Subjects {
				if o.Subjects[i].Namespace == "af-builds" {
					o.Subjects[i].Namespace = ns
				}
			}
		}
		if obj.GetNamespace() != "" {
			if obj.GetNamespace() != "af-builds" {
				t.Fatalf("%T %s lives in %s, outside af-builds", obj, obj.GetName(), obj.GetNamespace())
			}
			obj.SetNamespace(ns)
		}
	}
	return objs
}

func TestRBACIsEnoughForTheExecutor(t *testing.T) {
	t.Parallel()
	env := kubetest.Start(t)
	ns := kubetest.UniqueName(t)
	env.Create(t, infraObjects(t, ns, "namespace.yaml", "rbac.yaml")...)
	ctx := context.Background()

	// dispatch as it runs in a cluster: the af-dispatch ServiceAccount's
	// token, through a kubeconfig file and ClientConfig.
	saConfig := env.ServiceAccountConfig(t, ns, "af-dispatch")
	cfg := sampleConfig()
	cfg.Namespace = ns
	cc := kubeclient.Config{Mode: kubeclient.ModeKubeconfig, Kubeconfig: kubetest.WriteKubeconfig(t, saConfig)}
	rc, err := cc.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	ex, err := NewFromREST(rc, cfg)
	if err != nil {
		t.Fatal(err)
	}

	b := sampleBuild()
	id := b.Env.BuildJobID
	if h, err := ex.Submit(ctx, b); err != nil || !h.Created {
		t.Fatalf("Submit as af-dispatch = %+v, %v", h, err)
	}
	if h, err := ex.Submit(ctx, b); err != nil || h.Created {
		t.Fatalf("duplicate Submit as af-dispatch = %+v, %v", h, err)
	}
	if st, err := ex.Status(ctx, id); err != nil || st != executor.StatePending {
		t.Fatalf("Status as af-dispatch = %s, %v", st, err)
	}
	if ids, err := ex.Active(ctx, b.ServiceID, b.Branch); err != nil || !slices.Equal(ids, []string{id}) {
		t.Fatalf("Active as af-dispatch = %v, %v", ids, err)
	}
	if err := ex.Cancel(ctx, id); err != nil {
		t.Fatalf("Cancel as af-dispatch: %v", err)
	}
	assertGone(t, env.Kube, ns, JobName(id))

	// The reaper: list Jobs and pods, mark the Job.
	oom := sampleBuild()
	oom.Env.BuildJobID = "oom-as-dispatch"
	if _, err := ex.Submit(ctx, oom); err != nil {
		t.Fatal(err)
	}
	job, err := env.Kube.BatchV1().Jobs(ns).Get(ctx, JobName(oom.Env.BuildJobID), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	env.PodOf(t, job, kubetest.Terminated(BuilderContainer, 137, "OOMKilled"))
	if lost, err := ex.Reap(ctx); err != nil || len(lost) != 1 || lost[0].BuildJobID != oom.Env.BuildJobID {
		t.Fatalf("Reap as af-dispatch = %+v, %v", lost, err)
	}
	if lost, err := ex.Reap(ctx); err != nil || len(lost) != 0 {
		t.Fatalf("second Reap as af-dispatch = %+v, %v; want nothing", lost, err)
	}
}

func assertGone(t *testing.T, kube k8s.Interface, ns, name string) {
	t.Helper()
	ctx := context.Background()
	if _, err := kube.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("job %s: %v, want NotFound", name, err)
	}
	if _, err := kube.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("secret %s: %v, want NotFound", name, err)
	}
}

func TestRBACGrantsNothingBeyondBuildJobsSecretsAndReadingPods(t *testing.T) {
	t.Parallel()
	env := kubetest.Start(t)
	ns := kubetest.UniqueName(t)
	env.Create(t, infraObjects(t, ns, "namespace.yaml", "rbac.yaml")...)
	other := env.Namespace(t)
	ctx := context.Background()

	sa, err := k8s.NewForConfig(env.ServiceAccountConfig(t, ns, "af-dispatch"))
	if err != nil {
		t.Fatal(err)
	}
	can := func(verb, group, resource, subresource, namespace string) bool {
		t.Helper()
		r, err := sa.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: namespace, Verb: verb, Group: group, Resource: resource, Subresource: subresource,
			}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return r.Status.Allowed
	}

	type access struct{ verb, group, resource, sub, ns string }
	describe := func(a access) string {
		what := a.resource
		if a.group != "" {
			what = a.group + "/" + what
		}
		if a.sub != "" {
			what += "/" + a.sub
		}
		where := "namespace " + a.ns
		if a.ns == "" {
			where = "all namespaces"
		}
		return a.verb + " " + what + " in " + where
	}
	allowed := []access{
		{"create", "batch", "jobs", "", ns}, {"get", "batch", "jobs", "", ns}, {"list", "batch", "jobs", "", ns},
		{"delete", "batch", "jobs", "", ns}, {"patch", "batch", "jobs", "", ns},
		{"get", "", "pods", "", ns}, {"list", "", "pods", "", ns},
		{"create", "", "secrets", "", ns}, {"get", "", "secrets", "", ns}, {"delete", "", "secrets", "", ns},
	}
	for _, a := range allowed {
		if !can(a.verb, a.group, a.resource, a.sub, a.ns) {
			t.Errorf("af-dispatch cannot %s; the executor needs it", describe(a))
		}
	}
	denied := []access{
		// Other namespaces, and the cluster as a whole.
		{"list", "", "pods", "", ""},
		{"list", "", "secrets", "", ""},
		{"get", "", "secrets", "", other},
		{"create", "batch", "jobs", "", other},
		{"list", "", "namespaces", "", ""},
		{"create", "rbac.authorization.k8s.io", "clusterrolebindings", "", ""},
		// In its own namespace: no listing of credentials, no edits, no
		// pods of its own (a privileged pod is one create away), no other
		// workloads, no privilege escalation through RBAC or tokens.
		{"list", "", "secrets", "", ns},
		{"watch", "", "secrets", "", ns},
		{"update", "", "secrets", "", ns},
		{"patch", "", "secrets", "", ns},
		{"watch", "batch", "jobs", "", ns}, // the executor only lists
		{"update", "batch", "jobs", "", ns},
		{"update", "batch", "jobs", "status", ns},
		{"patch", "batch", "jobs", "status", ns},
		{"create", "", "pods", "", ns},
		{"delete", "", "pods", "", ns},
		{"update", "", "pods", "", ns},
		{"patch", "", "pods", "", ns},
		{"watch", "", "pods", "", ns},
		{"get", "", "pods", "log", ns},
		{"create", "", "pods", "exec", ns},
		{"list", "", "pods", "", other},
		{"create", "apps", "deployments", "", ns},
		{"create", "batch", "cronjobs", "", ns},
		{"create", "rbac.authorization.k8s.io", "rolebindings", "", ns},
		{"create", "", "serviceaccounts", "token", ns},
		{"create", "", "configmaps", "", ns},
		{"deletecollection", "batch", "jobs", "", ns},
	}
	for _, a := range denied {
		if can(a.verb, a.group, a.resource, a.sub, a.ns) {
			t.Errorf("af-dispatch can %s; it must not", describe(a))
		}
	}

	// And the real calls are refused, not just the reviews.
	if _, err := sa.CoreV1().Pods("").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("list pods cluster-wide: %v, want Forbidden", err)
	}
	if _, err := env.Kube.CoreV1().Secrets(other).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "elsewhere"}, StringData: map[string]string{"k": "v"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := sa.CoreV1().Secrets(other).Get(ctx, "elsewhere", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("read a secret in another namespace: %v, want Forbidden", err)
	}
	if _, err := sa.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("list the build secrets: %v, want Forbidden", err)
	}
	job, _, err := Render(sampleConfig(), sampleBuild())
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "direct", Namespace: ns}, Spec: job.Spec.Template.Spec}
	if _, err := sa.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("create a privileged pod directly: %v, want Forbidden", err)
	}
}

func TestBuildNamespaceAdmitsTheBuildPodAndOthersDoNot(t *testing.T) {
	t.Parallel()
	env := kubetest.Start(t)
	ctx := context.Background()
	builds := kubetest.UniqueName(t)
	env.Create(t, infraObjects(t, builds, "namespace.yaml")...)

	ordinary := kubetest.UniqueName(t)
	env.Create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ordinary, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "baseline",
	}}})

	job, _, err := Render(sampleConfig(), sampleBuild())
	if err != nil {
		t.Fatal(err)
	}
	// What the Job controller would create, dry-run, so admission (Pod
	// Security included) runs without a kubelet having to.
	podIn := func(ns string) error {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "build-pod", Namespace: ns, Labels: job.Spec.Template.Labels},
			Spec:       *job.Spec.Template.Spec.DeepCopy(),
		}
		_, err := env.Kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	}
	if err := podIn(builds); err != nil {
		t.Errorf("the build namespace refuses the build pod: %v", err)
	}
	err = podIn(ordinary)
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "privileged") {
		t.Errorf("a baseline namespace should refuse the privileged dind sidecar, got %v", err)
	}
}

func TestNetworkPolicySelectsBuildPodsAndFencesThem(t *testing.T) {
	t.Parallel()
	env := kubetest.Start(t)
	ns := kubetest.UniqueName(t)
	objs := infraObjects(t, ns, "namespace.yaml", "networkpolicy.yaml")
	env.Create(t, objs...) // the API server validates the policy

	var np *networkingv1.NetworkPolicy
	for _, o := range objs {
		if p, ok := o.(*networkingv1.NetworkPolicy); ok {
			np = p
		}
	}
	if np == nil {
		t.Fatal("networkpolicy.yaml holds no NetworkPolicy")
	}
	job, _, err := Render(sampleConfig(), sampleBuild())
	if err != nil {
		t.Fatal(err)
	}
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil {
		t.Fatal(err)
	}
	if !sel.Matches(labels.Set(job.Spec.Template.Labels)) {
		t.Errorf("the policy's selector %s misses the build pods (labels %v)", sel, job.Spec.Template.Labels)
	}
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) || len(np.Spec.Ingress) != 0 {
		t.Error("build pods must accept no inbound traffic")
	}
	var v4 *networkingv1.IPBlock
	for _, rule := range np.Spec.Egress {
		for _, peer := range rule.To {
			if peer.IPBlock != nil && peer.IPBlock.CIDR == "0.0.0.0/0" {
				v4 = peer.IPBlock
			}
		}
	}
	if v4 == nil {
		t.Fatal("no internet egress rule")
	}
	for _, cidr := range []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16"} {
		if !slices.Contains(v4.Except, cidr) {
			t.Errorf("egress to %s is not excluded", cidr)
		}
	}
}

// TestNetworkPolicyEgressSemantics evaluates the policy's egress rules the
// way a CNI would, for addresses that matter, rather than looking for
// strings: a rule added later with no peers (which allows everything), a
// lost "Egress" policy type (which leaves egress open) or a widened DNS rule
// fails here.
func TestNetworkPolicyEgressSemantics(t *testing.T) {
	t.Parallel()
	var np *networkingv1.NetworkPolicy
	for _, o := range kubetest.DecodeManifests(t, infraDir+"networkpolicy.yaml") {
		if p, ok := o.(*networkingv1.NetworkPolicy); ok {
			np = p
		}
	}
	if np == nil {
		t.Fatal("networkpolicy.yaml holds no NetworkPolicy")
	}
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		t.Fatal(`policyTypes lacks "Egress": egress would be unrestricted`)
	}

	// allowedByIPBlock reports whether some rule lets the pod reach ip on
	// port/TCP through an ipBlock peer (or through a rule with no peers).
	allowedByIPBlock := func(ip string, port int32) bool {
		addr := netip.MustParseAddr(ip)
		for _, rule := range np.Spec.Egress {
			portOK := len(rule.Ports) == 0
			for _, p := range rule.Ports {
				proto := corev1.ProtocolTCP
				if p.Protocol != nil {
					proto = *p.Protocol
				}
				if proto == corev1.ProtocolTCP && (p.Port == nil || p.Port.IntVal == port) {
					portOK = true
				}
			}
			if !portOK {
				continue
			}
			if len(rule.To) == 0 {
				return true
			}
			for _, peer := range rule.To {
				b := peer.IPBlock
				if b == nil {
					continue
				}
				if !netip.MustParsePrefix(b.CIDR).Contains(addr) {
					continue
				}
				excepted := false
				for _, ex := range b.Except {
					if netip.MustParsePrefix(ex).Contains(addr) {
						excepted = true
					}
				}
				if !excepted {
					return true
				}
			}
		}
		return false
	}

	for _, ip := range []string{
		"169.254.169.254", // instance metadata (node IAM credentials)
		"169.254.170.2",   // ECS/EKS pod identity credentials
		"fd00:ec2::254",   // EC2 IMDS over IPv6
		"10.100.0.1",      // a service or VPC address
		"172.20.0.10",     // EKS's other default service range
		"192.168.12.7",    // a VPC neighbour
		"100.64.3.4",      // CGNAT, used for pods by some CNIs
		"fe80::1",         // IPv6 link-local
	} {
		for _, port := range []int32{80, 443, 2375, 10250} {
			if allowedByIPBlock(ip, port) {
				t.Errorf("build pods may reach %s:%d", ip, port)
			}
		}
	}
	for _, ip := range []string{"140.82.112.3", "1.1.1.1", "2606:4700:4700::1111"} {
		if !allowedByIPBlock(ip, 443) {
			t.Errorf("build pods cannot reach the internet address %s:443", ip)
		}
	}

	// Every selector peer is the cluster DNS, and only on port 53.
	dns := 0
	for _, rule := range np.Spec.Egress {
		for _, peer := range rule.To {
			if peer.IPBlock != nil {
				continue
			}
			ns, pods := peer.NamespaceSelector, peer.PodSelector
			if ns == nil || pods == nil ||
				!maps.Equal(ns.MatchLabels, map[string]string{"kubernetes.io/metadata.name": "kube-system"}) || len(ns.MatchExpressions) > 0 ||
				!maps.Equal(pods.MatchLabels, map[string]string{"k8s-app": "kube-dns"}) || len(pods.MatchExpressions) > 0 {
				t.Errorf("egress peer %+v is not exactly kube-dns in kube-system", peer)
				continue
			}
			if len(rule.Ports) == 0 {
				t.Error("the DNS rule allows every port")
			}
			for _, p := range rule.Ports {
				if p.Port == nil || p.Port.IntVal != 53 || p.EndPort != nil {
					t.Errorf("the DNS rule allows port %v", p.Port)
				}
			}
			dns++
		}
	}
	if dns == 0 {
		t.Error("no egress rule lets build pods resolve names through kube-dns")
	}
}
