package kubernetes

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sethvargo/go-envconfig"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes/kubetest"
)

const buildkitGoldenPath = "../../../../infra/k8s/builder/job.buildkit.template.yaml"

// buildkitConfig is sampleConfig with BUILD_BACKEND=buildkit and every
// other buildkit setting at its default.
func buildkitConfig(t *testing.T) Config {
	t.Helper()
	cfg, err := LoadConfig(context.Background(), envconfig.MapLookuper(map[string]string{
		"RUNNER_IMAGE":  sampleConfig().RunnerImage,
		"BUILD_BACKEND": "buildkit",
	}))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestBuildKitJobTemplateIsCurrent(t *testing.T) {
	job, secret, err := Render(buildkitConfig(t), sampleBuild())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.WriteString(strings.Replace(goldenHeader, "for a fixed\n# sample build",
		"with BUILD_BACKEND=buildkit\n# for a fixed sample build", 1))
	if err := RenderYAML(&buf, job, secret, true); err != nil {
		t.Fatal(err)
	}
	got := strings.ReplaceAll(buf.String(), "-run TestJobTemplateIsCurrent", "-run TestBuildKitJobTemplateIsCurrent")
	if *update {
		if err := os.WriteFile(buildkitGoldenPath, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(buildkitGoldenPath)
	if err != nil {
		t.Fatalf("%v (generate it with -update)", err)
	}
	if string(want) != got {
		t.Errorf("job.buildkit.template.yaml is out of date with Render; regenerate it with\n"+
			"  go test ./functions/dispatch/executor/kubernetes -run TestBuildKitJobTemplateIsCurrent -update\n"+
			"First difference near: %s", firstDiff(string(want), got))
	}
}

func TestBuildKitPodRunsRootlessWithNothingPrivileged(t *testing.T) {
	job, _, err := Render(buildkitConfig(t), sampleBuild())
	if err != nil {
		t.Fatal(err)
	}
	pod := job.Spec.Template.Spec
	if len(pod.Containers) != 1 || len(pod.InitContainers) != 1 {
		t.Fatalf("want one builder and one sidecar, got %d + %d", len(pod.Containers), len(pod.InitContainers))
	}
	builder, bk := pod.Containers[0], pod.InitContainers[0]

	if bk.Name != BuildKitContainer || bk.Image != DefaultBuildKitImage {
		t.Errorf("sidecar = %s %s, want %s %s", bk.Name, bk.Image, BuildKitContainer, DefaultBuildKitImage)
	}
	if bk.RestartPolicy == nil || *bk.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Error("buildkitd must be a native sidecar (init container with restartPolicy Always)")
	}
	sc := bk.SecurityContext
	switch {
	case sc == nil:
		t.Fatal("buildkitd has no security context")
	case sc.Privileged != nil && *sc.Privileged:
		t.Error("buildkitd is privileged")
	case sc.RunAsUser == nil || *sc.RunAsUser != 1000 || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
		t.Errorf("buildkitd must run as the rootless image's uid 1000, non-root: %+v", sc)
	case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeLocalhost ||
		*sc.SeccompProfile.LocalhostProfile != "af-buildkitd.json":
		t.Errorf("seccomp = %+v, want the node's af-buildkitd.json", sc.SeccompProfile)
	case sc.AppArmorProfile == nil || sc.AppArmorProfile.Type != corev1.AppArmorProfileTypeLocalhost ||
		*sc.AppArmorProfile.LocalhostProfile != "af-buildkitd":
		t.Errorf("apparmor = %+v, want the node's af-buildkitd", sc.AppArmorProfile)
	case !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		!slices.Equal(sc.Capabilities.Add, []corev1.Capability{"SETUID", "SETGID"}):
		t.Errorf("capabilities = %+v, want all dropped but the ID-map pair", sc.Capabilities)
	}
	for _, c := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
		if c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged {
			t.Errorf("container %s is privileged", c.Name)
		}
		if len(c.Ports) > 0 {
			t.Errorf("container %s exposes ports %v; buildkitd must be reachable only inside the pod", c.Name, c.Ports)
		}
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		t.Error("the build pod must not share the node's namespaces")
	}

	// Listening only on the shared socket; the probes use it too.
	for _, a := range bk.Args {
		if strings.HasPrefix(a, "--addr") && a != "--addr="+BuildKitHost {
			t.Errorf("buildkitd listens on %s, want only %s", a, BuildKitHost)
		}
	}
	if !slices.Contains(bk.Args, "--addr="+BuildKitHost) {
		t.Errorf("buildkitd args %v do not set the socket", bk.Args)
	}
	for _, p := range []*corev1.Probe{bk.StartupProbe, bk.ReadinessProbe} {
		if p == nil || p.Exec == nil || !slices.Equal(p.Exec.Command, []string{"buildctl", "--addr=" + BuildKitHost, "debug", "workers"}) {
			t.Errorf("probe %+v, want buildctl debug workers on the socket", p)
		}
	}

	mounts := func(c corev1.Container) map[string]string {
		m := map[string]string{}
		for _, vm := range c.VolumeMounts {
			m[vm.Name] = vm.MountPath
		}
		return m
	}
	if m := mounts(bk); m[buildkitStateVolume] != "/home/user/.local/share/buildkit" || m[buildkitSocketVolume] != "/run/buildkit" {
		t.Errorf("buildkitd mounts = %v", m)
	}
	if m := mounts(builder); len(m) != 1 || m[buildkitSocketVolume] != "/run/buildkit" {
		t.Errorf("builder mounts = %v, want the socket directory alone", m)
	}
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	if len(vols) != 2 || vols[buildkitStateVolume].EmptyDir == nil || vols[buildkitStateVolume].EmptyDir.SizeLimit == nil ||
		vols[buildkitSocketVolume].EmptyDir == nil {
		t.Errorf("volumes = %+v, want a size-limited state emptyDir and a socket emptyDir", pod.Volumes)
	}
	if pod.SecurityContext == nil || !slices.Equal(pod.SecurityContext.SupplementalGroups, []int64{1000}) {
		t.Errorf("the builder must be in buildkitd's group to dial its 0660 socket: %+v", pod.SecurityContext)
	}

	// The builder is as hardened as with dind.
	bsc := builder.SecurityContext
	if !*bsc.RunAsNonRoot || *bsc.RunAsUser != 10001 || *bsc.AllowPrivilegeEscalation ||
		bsc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("builder security context not hardened: %+v", bsc)
	}

	env := map[string]string{}
	for _, e := range builder.Env {
		env[e.Name] = e.Value
	}
	if env["BUILD_BACKEND"] != "buildkit" || env["BUILDKIT_HOST"] != BuildKitHost {
		t.Errorf("runner env BUILD_BACKEND=%q BUILDKIT_HOST=%q", env["BUILD_BACKEND"], env["BUILDKIT_HOST"])
	}
	if _, ok := env["DOCKER_HOST"]; ok {
		t.Error("DOCKER_HOST is set, but there is no Docker engine in a buildkit pod")
	}
}

func TestDockerBackendIsTheDefaultAndUnchanged(t *testing.T) {
	cfg := sampleConfig()
	if cfg.Backend != BackendDocker {
		t.Fatalf("default backend = %q", cfg.Backend)
	}
	job, _, err := Render(cfg, sampleBuild())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range job.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "BUILD_BACKEND" || e.Name == "BUILDKIT_HOST" {
			t.Errorf("docker backend sets %s", e.Name)
		}
	}
	if job.Spec.Template.Spec.InitContainers[0].Name != DindContainer {
		t.Error("docker backend lost its dind sidecar")
	}
}

// The image's BuildKit must be the one the runner's client is built
// against: the control API and the solve options move between releases.
func TestDefaultBuildKitImageMatchesGoMod(t *testing.T) {
	mod, err := os.ReadFile("../../../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*github\.com/moby/buildkit (v\S+)`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod does not require github.com/moby/buildkit")
	}
	if want := "moby/buildkit:" + string(m[1]) + "-rootless"; DefaultBuildKitImage != want {
		t.Errorf("DefaultBuildKitImage = %s, want %s", DefaultBuildKitImage, want)
	}
	if d := DefaultConfig().BuildKit.Image; d != DefaultBuildKitImage {
		t.Errorf("BUILDKIT_IMAGE default = %s, want DefaultBuildKitImage %s", d, DefaultBuildKitImage)
	}
	if d := DefaultConfig().BuildKit; d.SeccompProfile != DefaultBuildKitSeccomp || d.AppArmorProfile != DefaultBuildKitAppArmor {
		t.Errorf("profile defaults = %+v", d)
	}
}

func TestBuildKitSettingsAreValidated(t *testing.T) {
	cases := map[string]struct {
		env  map[string]string
		want string
	}{
		"unknown backend":     {map[string]string{"BUILD_BACKEND": "podman"}, "BUILD_BACKEND"},
		"bad seccomp":         {map[string]string{"BUILD_BACKEND": "buildkit", "BUILDKIT_SECCOMP_PROFILE": "Unconfined"}, "BUILDKIT_SECCOMP_PROFILE"},
		"empty localhost":     {map[string]string{"BUILD_BACKEND": "buildkit", "BUILDKIT_APPARMOR_PROFILE": "localhost/"}, "BUILDKIT_APPARMOR_PROFILE"},
		"escaping localhost":  {map[string]string{"BUILD_BACKEND": "buildkit", "BUILDKIT_SECCOMP_PROFILE": "localhost/../x.json"}, "BUILDKIT_SECCOMP_PROFILE"},
		"buildkit sans image": {map[string]string{"BUILD_BACKEND": "buildkit", "BUILDKIT_IMAGE": " "}, "BUILDKIT_IMAGE"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			env := map[string]string{"RUNNER_IMAGE": "r:1"}
			for k, v := range tc.env {
				env[k] = v
			}
			_, err := LoadConfig(context.Background(), envconfig.MapLookuper(env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to name %s", err, tc.want)
			}
		})
	}

	cfg, err := LoadConfig(context.Background(), envconfig.MapLookuper(map[string]string{
		"RUNNER_IMAGE": "r:1", "BUILD_BACKEND": "buildkit",
		"BUILDKIT_SECCOMP_PROFILE": "unconfined", "BUILDKIT_APPARMOR_PROFILE": "unset",
		"BUILDKIT_IMAGE": "registry.example/buildkit:pinned-rootless",
	}))
	if err != nil {
		t.Fatal(err)
	}
	job, _, err := Render(cfg, sampleBuild())
	if err != nil {
		t.Fatal(err)
	}
	bk := job.Spec.Template.Spec.InitContainers[0]
	if bk.Image != "registry.example/buildkit:pinned-rootless" ||
		bk.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeUnconfined ||
		bk.SecurityContext.AppArmorProfile != nil {
		t.Errorf("buildkitd = %s %+v", bk.Image, bk.SecurityContext)
	}
}

// What the issue asks of the buildkit backend: the builds namespace needs
// only Pod Security "baseline". The real kube-apiserver's PodSecurity
// admission decides, on the namespace of infra/k8s/namespace.buildkit.yaml.
func TestBaselineNamespaceAdmitsTheBuildKitPodAndRefusesDind(t *testing.T) {
	t.Parallel()
	env := kubetest.Start(t)
	ns := kubetest.UniqueName(t)
	env.Create(t, infraObjects(t, ns, "namespace.buildkit.yaml")...)
	got, err := env.Kube.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Labels["pod-security.kubernetes.io/enforce"] != "baseline" {
		t.Fatalf("namespace.buildkit.yaml enforces %q, want baseline", got.Labels["pod-security.kubernetes.io/enforce"])
	}

	podOf := func(cfg Config) error {
		job, _, err := Render(cfg, sampleBuild())
		if err != nil {
			t.Fatal(err)
		}
		// What the Job controller would create, dry-run, so admission runs
		// without a kubelet having to.
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "build-", Namespace: ns, Labels: job.Spec.Template.Labels},
			Spec:       *job.Spec.Template.Spec.DeepCopy(),
		}
		_, err = env.Kube.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	}

	if err := podOf(buildkitConfig(t)); err != nil {
		t.Errorf("baseline refuses the buildkit build pod: %v", err)
	}
	err = podOf(sampleConfig())
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `violates PodSecurity "baseline`) || !strings.Contains(err.Error(), "privileged") {
		t.Errorf("baseline should refuse the dind pod as privileged, got %v", err)
	}

	// BuildKit's own Kubernetes examples set both profiles Unconfined;
	// baseline refuses that, which is why the default is node-installed
	// Localhost profiles.
	unconfined := buildkitConfig(t)
	unconfined.BuildKit.SeccompProfile, unconfined.BuildKit.AppArmorProfile = "unconfined", "unconfined"
	err = podOf(unconfined)
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "seccompProfile") || !strings.Contains(err.Error(), "AppArmor profile") {
		t.Errorf("baseline should refuse Unconfined seccomp and AppArmor, got %v", err)
	}
}
