//go:build e2enode

package e2enode

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes"
	"github.com/alternatefutures/af-builder/internal/testinfra/buildkitd"
	"github.com/alternatefutures/af-builder/internal/testinfra/gitserver"
	"github.com/alternatefutures/af-builder/internal/testinfra/kubenode"
)

// With BUILD_BACKEND=buildkit a build pod has no privileged container: the
// rootless buildkitd sidecar (uid 1000, root only in its own user
// namespace, under the node-side seccomp profile) builds and pushes, and
// Pod Security baseline admits the pod but for the test-only host network.
func TestBuildKitBackendBuildsRootlessInABaselineNamespace(t *testing.T) {
	exclusive(t)
	ctx := context.Background()
	importBuildKitImage(t)
	installSeccompProfile(t)

	d := startDispatch(t, "buildkit",
		"BUILD_BACKEND=buildkit",
		"BUILDKIT_IMAGE="+kubernetes.DefaultBuildKitImage,
		// The node's kernel has no AppArmor (see the README).
		"BUILDKIT_APPARMOR_PROFILE=unset",
	)
	// A RUN step: buildkitd's runc runs it as root inside the user
	// namespace, which is the part of a rootless build that needs the
	// setuid ID mappers and the seccomp profile.
	b := d.push(t, map[string]gitserver.File{
		"Dockerfile": gitserver.Text("FROM scratch\nCOPY busybox /bin/busybox\n" +
			"RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox id -u > /uid-in-build\"]\nCOPY hello.txt /hello.txt\n"),
		"busybox":   gitserver.File{Content: string(suite.busybox), Mode: 0o755},
		"hello.txt": gitserver.Text("built rootless on a real node\n"),
	})
	term := waitTerminal(t, b.id, 5*time.Minute)
	t.Logf("push → %s in %s", term.Status, time.Since(b.pushed).Round(time.Millisecond))
	p := term.Payload
	if term.Status != "SUCCEEDED" {
		t.Fatalf("build ended %s in phase %v: %v", term.Status, p["failedPhase"], p["errorMessage"])
	}
	tag := str(p["imageTag"])
	repo, ref, _ := strings.Cut(strings.TrimPrefix(tag, suite.reg.Addr()+"/"), ":")
	digest, err := suite.reg.ManifestDigest(ctx, repo, ref)
	if err != nil {
		t.Fatalf("image %s not in the registry: %v", tag, err)
	}
	if p["imageDigest"] != digest {
		t.Errorf("SUCCEEDED reports digest %v, the registry has %s", p["imageDigest"], digest)
	}
	noSecretsIn(t, b.id)

	done := d.waitPod(t, b.id, time.Minute, "pod Succeeded with the buildkitd sidecar stopped", func(p *corev1.Pod) bool {
		s, _ := containerState(p, kubernetes.BuildKitContainer)
		return p != nil && p.Status.Phase == corev1.PodSucceeded && s.Terminated != nil
	})
	if len(done.Spec.InitContainers) != 1 || done.Spec.InitContainers[0].Name != kubernetes.BuildKitContainer ||
		done.Spec.InitContainers[0].Image != kubernetes.DefaultBuildKitImage {
		t.Errorf("pod's sidecars are %+v, want only %s from %s", done.Spec.InitContainers, kubernetes.BuildKitContainer, kubernetes.DefaultBuildKitImage)
	}
	for _, c := range append(done.Spec.InitContainers, done.Spec.Containers...) {
		sc := c.SecurityContext
		if sc == nil || sc.Privileged != nil && *sc.Privileged {
			t.Errorf("container %s is privileged (security context %+v)", c.Name, sc)
		}
		if sc != nil && (sc.RunAsUser == nil || *sc.RunAsUser == 0) {
			t.Errorf("container %s may run as root: runAsUser %v", c.Name, sc.RunAsUser)
		}
	}
	if s, _ := containerState(done, kubernetes.BuilderContainer); s.Terminated == nil || s.Terminated.ExitCode != 0 {
		t.Errorf("builder state %+v, want exited 0", s)
	}
	admittedAtBaseline(t, done.Spec)
}

// admittedAtBaseline submits the pod that built, as a server-side dry run,
// to a namespace that enforces Pod Security baseline. The build itself ran
// in a namespace without that label: the test-only hostNetwork is a host
// namespace, which baseline refuses. So the API server must refuse the pod
// as it ran for that one reason only, and admit it as production renders
// it (without the test-only setting, the only difference). A privileged
// pod is refused there too, so the label is in force.
func admittedAtBaseline(t *testing.T, spec corev1.PodSpec) {
	t.Helper()
	ctx := context.Background()
	ns := "e2e-buildkit-baseline"
	_, err := suite.node.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: ns,
		Labels: map[string]string{
			"pod-security.kubernetes.io/enforce":         "baseline",
			"pod-security.kubernetes.io/enforce-version": "latest",
		},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		suite.node.Client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	dryRun := func(name string, spec corev1.PodSpec) error {
		spec.NodeName = ""
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
		_, err := suite.node.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	}

	asRan := dryRun("as-ran", *spec.DeepCopy())
	// Anything else would follow as ", <check> (...)".
	if asRan == nil || !strings.HasSuffix(asRan.Error(), `violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)`) {
		t.Errorf("the pod as it ran should be refused at baseline for its test-only hostNetwork alone; got %v", asRan)
	}
	production := *spec.DeepCopy()
	production.HostNetwork, production.DNSPolicy = false, corev1.DNSClusterFirst
	if err := dryRun("as-in-production", production); err != nil {
		t.Errorf("Pod Security baseline refuses the build pod without the test-only host network: %v", err)
	}

	privileged := corev1.PodSpec{Containers: []corev1.Container{{
		Name: "dind", Image: dindImage, ImagePullPolicy: corev1.PullNever,
		SecurityContext: &corev1.SecurityContext{Privileged: ptrTo(true)},
	}}}
	if err := dryRun("privileged", privileged); err == nil || !strings.Contains(err.Error(), `violates PodSecurity "baseline:latest": privileged`) {
		t.Errorf("namespace %s admitted a privileged pod (err %v); it is not at Pod Security baseline", ns, err)
	}
}

func ptrTo[T any](v T) *T { return &v }

// importBuildKitImage imports the stand-in of the rootless BuildKit image
// under the name the Job renderer uses, made from tools/buildkitd/build.sh's
// buildkitd and buildctl.
func importBuildKitImage(t *testing.T) {
	t.Helper()
	bin, err := buildkitd.Binary()
	if err != nil {
		t.Fatal(err)
	}
	ctl := filepath.Join(filepath.Dir(bin), "buildctl")
	if _, err := os.Stat(ctl); err != nil {
		t.Fatalf("buildctl not beside %s (run tools/buildkitd/build.sh): %v", bin, err)
	}
	img, err := kubenode.BuildKitRootlessImage(kubernetes.DefaultBuildKitImage, bin, ctl)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := suite.node.Import(ctx, img); err != nil {
		t.Fatal(err)
	}
	t.Logf("rootless BuildKit image imported in %s", time.Since(start).Round(time.Millisecond))
}

// installSeccompProfile puts infra/k8s/builder/profiles' seccomp profile
// where the kubelet looks for Localhost profiles, as a node's set-up would.
func installSeccompProfile(t *testing.T) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "..", "infra", "k8s", "builder", "profiles", "af-buildkitd.json"))
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(suite.node.SeccompDir(), strings.TrimPrefix(kubernetes.DefaultBuildKitSeccomp, "localhost/"))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, src, 0o644); err != nil {
		t.Fatal(err)
	}
}
