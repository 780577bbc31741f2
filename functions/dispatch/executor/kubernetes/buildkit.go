package kubernetes

import (
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/alternatefutures/af-builder/shared/contract"
)

// Build backends: the engine the build pod runs beside the runner, chosen by
// BUILD_BACKEND in dispatch's configuration and passed on to the runner.
const (
	// BackendDocker is a privileged docker:dind sidecar driven through the
	// Docker Engine API. Its namespace needs Pod Security "privileged".
	BackendDocker = contract.BackendDocker
	// BackendBuildKit is a rootless buildkitd sidecar driven through the
	// BuildKit client. Nothing in the pod is privileged; with the node-side
	// profiles of infra/k8s/builder/profiles its namespace needs only
	// Pod Security "baseline".
	BackendBuildKit = contract.BackendBuildKit
)

const (
	BuildKitContainer = "buildkitd"

	// BuildKitHost is where the runner reaches buildkitd: a unix socket on
	// an emptyDir the two containers share. Nothing listens on the pod's
	// network, so neither another pod nor a RUN step (rootless RUN steps
	// share the pod's network namespace) can reach the daemon.
	BuildKitHost      = "unix://" + buildkitSocketDir + "/buildkitd.sock"
	buildkitSocketDir = "/run/buildkit"

	// buildkitUID is the user of the moby/buildkit rootless image; the image
	// maps it to root inside its user namespace and cannot run as another
	// without being rebuilt.
	buildkitUID = 1000
	// buildkitStateDir must be an emptyDir: the image's VOLUME for it is
	// mounted nosuid,nodev on some nodes, where rootless mounts fail
	// (moby/buildkit#879).
	buildkitStateDir = "/home/user/.local/share/buildkit"

	buildkitSocketVolume = "buildkit-socket"
	buildkitStateVolume  = "buildkit-state"

	// DefaultBuildKitImage matches the BuildKit client the runner links
	// (github.com/moby/buildkit in go.mod; a test keeps them equal).
	DefaultBuildKitImage = "moby/buildkit:v0.34.2-rootless"

	// The profiles infra/k8s/builder/profiles installs on build nodes: the
	// container runtime's default rules, plus the namespace and mount calls
	// rootlesskit and runc need. Pod Security "baseline" admits Localhost
	// profiles and refuses Unconfined.
	DefaultBuildKitSeccomp  = "localhost/af-buildkitd.json"
	DefaultBuildKitAppArmor = "localhost/af-buildkitd"
)

// BuildKitConfig is the buildkitd sidecar of BackendBuildKit. Its resources
// are the engine's (DIND_*): it does the building in place of dind.
type BuildKitConfig struct {
	Image string `env:"BUILDKIT_IMAGE, default=moby/buildkit:v0.34.2-rootless"`
	// SeccompProfile and AppArmorProfile are "localhost/<name>" (a profile
	// installed on the node; Pod Security baseline), "unconfined" (what
	// BuildKit's own Kubernetes examples set; needs Pod Security privileged),
	// "runtime-default" (rootlesskit cannot create its user namespace under
	// the usual defaults) or "unset" (the node decides: for AppArmor, the
	// choice on nodes without AppArmor, where a profile keeps the pod from
	// starting).
	SeccompProfile  string `env:"BUILDKIT_SECCOMP_PROFILE, default=localhost/af-buildkitd.json"`
	AppArmorProfile string `env:"BUILDKIT_APPARMOR_PROFILE, default=localhost/af-buildkitd"`
}

// profile is a parsed BUILDKIT_*_PROFILE value.
type profile struct {
	kind      string // "Localhost", "Unconfined", "RuntimeDefault", or "" for unset
	localhost string
}

func parseProfile(v, s string) (profile, error) {
	switch {
	case s == "unset":
		return profile{}, nil
	case s == "unconfined":
		return profile{kind: "Unconfined"}, nil
	case s == "runtime-default":
		return profile{kind: "RuntimeDefault"}, nil
	case strings.HasPrefix(s, "localhost/") && len(s) > len("localhost/") && !strings.Contains(s, ".."):
		return profile{kind: "Localhost", localhost: strings.TrimPrefix(s, "localhost/")}, nil
	}
	return profile{}, fmt.Errorf("%s %q must be localhost/<profile>, unconfined, runtime-default or unset", v, s)
}

func (p profile) seccomp() *corev1.SeccompProfile {
	if p.kind == "" {
		return nil
	}
	sp := &corev1.SeccompProfile{Type: corev1.SeccompProfileType(p.kind)}
	if p.localhost != "" {
		sp.LocalhostProfile = ptr(p.localhost)
	}
	return sp
}

func (p profile) appArmor() *corev1.AppArmorProfile {
	if p.kind == "" {
		return nil
	}
	ap := &corev1.AppArmorProfile{Type: corev1.AppArmorProfileType(p.kind)}
	if p.localhost != "" {
		ap.LocalhostProfile = ptr(p.localhost)
	}
	return ap
}

// validateBackend is Config.Validate's part for the backend settings.
func (c Config) validateBackend() error {
	switch c.Backend {
	case BackendDocker:
		return nil
	case BackendBuildKit:
	default:
		return fmt.Errorf("BUILD_BACKEND %q must be %s or %s", c.Backend, BackendDocker, BackendBuildKit)
	}
	var errs []error
	if strings.TrimSpace(c.BuildKit.Image) == "" {
		errs = append(errs, errors.New("BUILDKIT_IMAGE is required with BUILD_BACKEND=buildkit"))
	}
	if _, err := parseProfile("BUILDKIT_SECCOMP_PROFILE", c.BuildKit.SeccompProfile); err != nil {
		errs = append(errs, err)
	}
	if _, err := parseProfile("BUILDKIT_APPARMOR_PROFILE", c.BuildKit.AppArmorProfile); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// backendEnv points the runner at the backend dispatch is configured for;
// whatever the request said about backends would name an engine the pod
// does not have. With buildkit there is no Docker engine, and RUN steps
// use buildkitd's network (a rootless daemon always runs them on its own,
// the pod's, network).
func (c Config) backendEnv(env *contract.Env) {
	if c.Backend != BackendBuildKit {
		env.BuildBackend, env.BuildkitHost = "", ""
		return
	}
	env.BuildBackend, env.BuildkitHost = contract.BackendBuildKit, BuildKitHost
	env.DockerHost, env.BuildNetwork = "", ""
}

// applyBackend swaps the dind sidecar podSpec lays out for a rootless
// buildkitd when the backend is buildkit.
func (c Config) applyBackend(spec *corev1.PodSpec, res podResources) {
	if c.Backend != BackendBuildKit {
		return
	}
	seccomp, _ := parseProfile("", c.BuildKit.SeccompProfile)
	apparmor, _ := parseProfile("", c.BuildKit.AppArmorProfile)

	// The socket is created 0660 by buildkitd's user (1000, root inside its
	// user namespace), so the runner joins that group to dial it.
	buildctl := []string{"buildctl", "--addr=" + BuildKitHost, "debug", "workers"}
	startup := &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: buildctl}},
		PeriodSeconds:    2,
		TimeoutSeconds:   5,
		FailureThreshold: 60,
	}
	readiness := startup.DeepCopy()
	readiness.PeriodSeconds, readiness.FailureThreshold = 10, 3

	buildkitd := corev1.Container{
		Name:            BuildKitContainer,
		Image:           c.BuildKit.Image,
		ImagePullPolicy: corev1.PullPolicy(c.ImagePullPolicy),
		// Native sidecar, as dind: up before the builder, stopped after it.
		RestartPolicy: ptr(corev1.ContainerRestartPolicyAlways),
		// The image's entrypoint is `rootlesskit buildkitd`. Kubernetes has
		// no equivalent of Docker's systempaths=unconfined, so RUN steps
		// cannot get a /proc of their own: they share buildkitd's PID
		// namespace (BuildKit's documented setting for Kubernetes).
		Args: []string{"--addr=" + BuildKitHost, "--oci-worker-no-process-sandbox"},
		Env:  []corev1.EnvVar{{Name: "BUILDKIT_HOST", Value: BuildKitHost}},
		// The image's user (numeric, so runAsNonRoot can be checked).
		// Privilege escalation stays allowed and SETUID/SETGID stay in the
		// bounding set: the setuid newuidmap/newgidmap write the user
		// namespace's ID map, which is what makes buildkitd root inside it
		// and nothing outside.
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:    ptr(true),
			RunAsUser:       ptr(int64(buildkitUID)),
			RunAsGroup:      ptr(int64(buildkitUID)),
			Capabilities:    &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"SETUID", "SETGID"}},
			SeccompProfile:  seccomp.seccomp(),
			AppArmorProfile: apparmor.appArmor(),
		},
		StartupProbe:   startup,
		ReadinessProbe: readiness,
		Resources:      res.dind,
		VolumeMounts: []corev1.VolumeMount{
			{Name: buildkitStateVolume, MountPath: buildkitStateDir},
			{Name: buildkitSocketVolume, MountPath: buildkitSocketDir},
		},
	}
	for i, ic := range spec.InitContainers {
		if ic.Name == DindContainer {
			spec.InitContainers[i] = buildkitd
		}
	}
	for i, v := range spec.Volumes {
		if v.Name == dockerStorageVolume {
			spec.Volumes[i] = corev1.Volume{Name: buildkitStateVolume, VolumeSource: v.VolumeSource}
		}
	}
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: buildkitSocketVolume, VolumeSource: corev1.VolumeSource{
		EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: ptr(resource.MustParse("1Mi"))},
	}})
	for i := range spec.Containers {
		if spec.Containers[i].Name == BuilderContainer {
			spec.Containers[i].VolumeMounts = append(spec.Containers[i].VolumeMounts,
				corev1.VolumeMount{Name: buildkitSocketVolume, MountPath: buildkitSocketDir})
		}
	}
	if spec.SecurityContext == nil {
		spec.SecurityContext = &corev1.PodSecurityContext{}
	}
	spec.SecurityContext.SupplementalGroups = append(spec.SecurityContext.SupplementalGroups, buildkitUID)
}
