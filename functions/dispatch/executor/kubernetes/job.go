// Package kubernetes runs each build as a Kubernetes Job: the runner as the
// main container, a privileged docker:dind engine as a native sidecar, and
// the build's secrets in a per-build Secret owned by the Job.
package kubernetes

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
	"unicode"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/alternatefutures/af-builder/functions/dispatch/executor"
	"github.com/alternatefutures/af-builder/shared/contract"
	"github.com/alternatefutures/af-builder/shared/validate"
)

// Label and annotation keys. Labels carry selectable, label-safe forms
// (possibly hashed); the annotations of the same name carry the full values,
// which is what code compares against.
const (
	LabelBuildID   = "af-builder.io/build-id"
	LabelServiceID = "af-builder.io/service-id"
	LabelBranch    = "af-builder.io/branch"
	LabelRepoOwner = "af-builder.io/repo-owner"
	LabelRepoName  = "af-builder.io/repo-name"
	LabelCommit    = "af-builder.io/commit"
	LabelTrigger   = "af-builder.io/trigger"

	AnnotationImageTag = "af-builder.io/image-tag"
	// AnnotationSubmittedAt orders builds finer than creationTimestamp's
	// seconds, so supersede can tell two pushes of the same second apart.
	AnnotationSubmittedAt = "af-builder.io/submitted-at"
	// AnnotationPushedAt is the push's own time (Build.PushedAt), which
	// orders a branch's builds before submission does.
	AnnotationPushedAt = "af-builder.io/pushed-at"

	// FinalizerReport keeps a build's Job, once deleted, until dispatch has
	// seen that the build has or will get its terminal status. A Job deleted
	// by anyone else (kubectl, a clean-up script) before its runner started
	// leaves nothing that would ever report, and the build would stay
	// "building" on the platform: the reaper reports it FAILED, then removes
	// the finalizer. Dispatch's own deletes remove it first.
	FinalizerReport = "af-builder.io/report"

	// The NetworkPolicy in infra/k8s selects build pods by these two.
	labelName      = "app.kubernetes.io/name"
	labelComponent = "app.kubernetes.io/component"
	labelManagedBy = "app.kubernetes.io/managed-by"

	appName       = "af-builder"
	componentName = "build"
	managerName   = "af-dispatch"
)

// Container names and the engine endpoint the runner talks to.
const (
	BuilderContainer = "builder"
	DindContainer    = "dind"

	// DockerHost is the dind sidecar as seen from the builder: containers of
	// one pod share the network namespace, so loopback reaches it. The IPv4
	// address, not localhost, since dind listens on 127.0.0.1 only and
	// localhost may resolve to ::1 first.
	DockerHost = "tcp://127.0.0.1:2375"

	// builderUID is the runner image's unprivileged user.
	builderUID = 10001

	dockerStorageVolume = "docker-storage"
)

// Redacted replaces secret values in RenderYAML output.
const Redacted = "REDACTED"

// JobName is the name of the Job (and of its Secret) for a build id. It is a
// pure function of the id, so a repeated Submit meets the first one's Job.
// The readable part is a lossy slug; the hash of the exact id keeps two ids
// that slug alike ("Build_1" and "build-1") apart.
func JobName(buildJobID string) string {
	const prefix, slugMax = "afb-", 40
	slug := dnsSlug(buildJobID, slugMax)
	if slug == "" {
		return prefix + shortHash(buildJobID)
	}
	return prefix + slug + "-" + shortHash(buildJobID)
}

// dnsSlug lowercases s and keeps only what a DNS-1123 label allows,
// collapsing everything else into single dashes.
func dnsSlug(s string, max int) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
		if b.Len() >= max {
			break
		}
	}
	return strings.Trim(b.String(), "-")
}

// shortHash is 40 bits of SHA-256: enough that distinct build ids in one
// namespace do not collide in practice, short enough to leave room for a
// readable name within 63 characters.
func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:5])
}

// LabelValue returns s when it is already a valid label value, otherwise a
// readable prefix plus a hash of s. Branch names ("feature/x") and long ids
// need the second form; annotations keep the original.
func LabelValue(s string) string {
	if len(validation.IsValidLabelValue(s)) == 0 {
		return s
	}
	const keep = validation.LabelValueMaxLength - 11 // "-" + 10 hex
	var b strings.Builder
	for _, r := range s {
		if r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
		if b.Len() >= keep {
			break
		}
	}
	prefix := strings.TrimFunc(b.String(), func(r rune) bool { return r == '-' || r == '_' || r == '.' })
	if prefix == "" {
		return shortHash(s)
	}
	return prefix + "-" + shortHash(s)
}

// Render builds the Job and its Secret for one build, without touching a
// cluster. Submit creates exactly these (adding the Secret's ownerReference,
// which needs the created Job's UID); `dispatch render` prints them.
//
// Every contract variable marked Secret goes into the Secret and reaches the
// builder through a secretKeyRef; the Job itself carries no secret value, so
// anyone allowed to read Jobs or Pods in the namespace learns nothing usable.
//
// cfg is trusted: New and LoadConfig validated it. The build is checked,
// since Render is the executor's edge.
func Render(cfg Config, b executor.Build) (*batchv1.Job, *corev1.Secret, error) {
	env := b.Env
	// The engine is always the sidecar; whatever the request said about
	// DOCKER_HOST would point the runner somewhere it cannot reach.
	env.DockerHost = cfg.TestNode.dockerHost()
	// RUN steps on the host network would share the pod's network
	// namespace, where dind's unauthenticated root API listens on
	// 127.0.0.1:2375: a Dockerfile could start a privileged container and
	// own the node. dind always has its bridge, so "host" is never needed
	// here; the daemon's default (bridge) keeps RUN steps off loopback.
	if env.BuildNetwork == "host" {
		env.BuildNetwork = ""
	}
	env.BuildNetwork = cfg.TestNode.buildNetwork(env.BuildNetwork)
	env.ReportedFile = contract.PodReportedFile
	cfg.backendEnv(&env)
	if err := env.Normalize(); err != nil {
		return nil, nil, err
	}
	if err := validateGrouping(b); err != nil {
		return nil, nil, err
	}

	name := JobName(env.BuildJobID)
	labels, annotations := buildMetadata(b, env.BuildJobID, env.RepoOwner, env.RepoName)
	annotations[AnnotationImageTag] = env.ImageTag

	secret := &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   cfg.Namespace,
			Labels:      copyMap(labels),
			Annotations: map[string]string{LabelBuildID: env.BuildJobID},
		},
		Type: corev1.SecretTypeOpaque,
		// Immutable: nothing may rewrite a build's credentials after the
		// fact, and the kubelet need not watch it.
		Immutable: ptr(true),
		Data:      map[string][]byte{},
	}

	var vars []corev1.EnvVar
	for _, v := range env.Vars() {
		if v.Secret {
			secret.Data[v.Name] = []byte(v.Value)
			vars = append(vars, corev1.EnvVar{Name: v.Name, ValueFrom: &corev1.EnvVarSource{
				SecretKeyRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: name},
					Key:                  v.Name,
					// Not optional: if the pod starts before the Secret exists
					// (see Submit), the kubelet holds the builder back and
					// retries instead of starting it without credentials.
					Optional: ptr(false),
				},
			}})
			continue
		}
		vars = append(vars, corev1.EnvVar{Name: v.Name, Value: v.Value})
	}

	res, err := cfg.resources()
	if err != nil {
		return nil, nil, err
	}

	// The runner has BuildTimeout for its work; the margin covers pulling
	// images, dind's start and the final callback after a timeout.
	deadline := int64((env.BuildTimeout + cfg.DeadlineMargin) / time.Second)

	podLabels := map[string]string{
		labelName:      appName,
		labelComponent: componentName,
		LabelBuildID:   labels[LabelBuildID],
	}

	job := &batchv1.Job{
		TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   cfg.Namespace,
			Labels:      labels,
			Annotations: annotations,
			Finalizers:  []string{FinalizerReport},
		},
		Spec: batchv1.JobSpec{
			// A build is not retried by Kubernetes: a second attempt would
			// report twice on one BuildJob. Retrying is the platform's call.
			BackoffLimit:            ptr(int32(0)),
			Completions:             ptr(int32(1)),
			Parallelism:             ptr(int32(1)),
			ActiveDeadlineSeconds:   &deadline,
			TTLSecondsAfterFinished: ptr(int32(cfg.TTLAfterFinished / time.Second)),
			PodFailurePolicy:        reportedExitPolicy(),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels: podLabels,
					Annotations: map[string]string{
						"kubectl.kubernetes.io/default-container": BuilderContainer,
					},
				},
				Spec: podSpec(cfg, name, vars, res),
			},
		},
	}
	return job, secret, nil
}

// reportedExitPolicy has the Job controller write down, in the Job's
// Failed condition, that its runner exited after reporting (exit 1 or 2,
// contract.RunnerReported). The pod is the only other record of that exit,
// and it goes when someone deletes it (kubectl delete pod, a node drain):
// the reaper would then read a failed Job without pods as a lost build and
// report it a second time. Exit 0 needs no rule: the Job completes. With a
// policy the Job controller also waits for a deleted pod's final phase
// before it counts it failed, which is when the exit is known.
func reportedExitPolicy() *batchv1.PodFailurePolicy {
	return &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{{
		Action: batchv1.PodFailurePolicyActionFailJob,
		OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
			ContainerName: ptr(BuilderContainer),
			Operator:      batchv1.PodFailurePolicyOnExitCodesOpIn,
			Values:        []int32{contract.ExitFailed, contract.ExitBadConfig},
		},
	}}}
}

// validateGrouping checks the fields outside the env contract; they end up
// in labels, annotations and label selectors.
func validateGrouping(b executor.Build) error {
	if err := validate.ServiceID(b.ServiceID); err != nil {
		return fmt.Errorf("service id %w", err)
	}
	if b.Branch != "" {
		if err := validate.BranchName(b.Branch); err != nil {
			return fmt.Errorf("branch %w", err)
		}
	}
	if b.CommitSHA != "" && !validate.IsCommitSHA(b.CommitSHA) {
		return errors.New("commit must be a full 40-character hex SHA")
	}
	if len(b.Trigger) > 32 || strings.ContainsFunc(b.Trigger, unicode.IsControl) {
		return errors.New("trigger must be a short word such as push or api")
	}
	return nil
}

func buildMetadata(b executor.Build, id, owner, repo string) (labels, annotations map[string]string) {
	labels = map[string]string{
		labelName:      appName,
		labelComponent: componentName,
		labelManagedBy: managerName,
	}
	annotations = map[string]string{}
	set := func(key, val string) {
		if val != "" {
			labels[key] = LabelValue(val)
			annotations[key] = val
		}
	}
	set(LabelBuildID, id)
	set(LabelServiceID, b.ServiceID)
	set(LabelBranch, b.Branch)
	set(LabelRepoOwner, owner)
	set(LabelRepoName, repo)
	set(LabelCommit, b.CommitSHA)
	set(LabelTrigger, b.Trigger)
	return labels, annotations
}

type podResources struct {
	builder, dind corev1.ResourceRequirements
	storage       *resource.Quantity
}

func podSpec(cfg Config, name string, env []corev1.EnvVar, res podResources) corev1.PodSpec {
	readiness := &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{
			// `docker version` fails when the daemon does not answer (docker
			// info exits 0 on some CLI versions). A tcpSocket probe cannot
			// work: the kubelet dials the pod IP, and dockerd listens on
			// loopback only.
			Command: []string{"docker", "--host=" + cfg.TestNode.dockerHost(), "version"},
		}},
		PeriodSeconds:    10,
		TimeoutSeconds:   5,
		FailureThreshold: 3,
	}

	dind := corev1.Container{
		Name:            DindContainer,
		Image:           cfg.DindImage,
		ImagePullPolicy: corev1.PullPolicy(cfg.ImagePullPolicy),
		// A native sidecar: started before the builder, kept running beside
		// it, and stopped by the kubelet once the builder exits, so the Job
		// completes on the builder's exit code alone.
		RestartPolicy: ptr(corev1.ContainerRestartPolicyAlways),
		// "dockerd" first makes the image's entrypoint skip its defaults,
		// which would also listen on 0.0.0.0:2375: an unauthenticated root
		// engine must not be reachable from the pod network. --tls=false is
		// required by Docker 27+ to listen on TCP without TLS.
		Args: append([]string{"dockerd", "--host=" + cfg.TestNode.dockerHost(), "--tls=false"}, cfg.TestNode.dindArgs()...),
		Env:  []corev1.EnvVar{{Name: "DOCKER_TLS_CERTDIR", Value: ""}},
		// No startup probe: on a native sidecar it would hold the builder
		// back until the engine answers, so a dind that never does would
		// leave the build silent until the Job's deadline (seen on a real
		// node). The runner waits for the engine itself and reports a
		// failure in phase engine after its own engine timeout. The
		// readiness probe reports the engine's health while the build runs.
		ReadinessProbe: readiness,
		Resources:      res.dind,
		SecurityContext: &corev1.SecurityContext{
			// dind needs it (mounts, cgroups, overlayfs). It is the only
			// privileged container, and the namespace exists for it alone.
			Privileged: ptr(true),
		},
		VolumeMounts: []corev1.VolumeMount{{Name: dockerStorageVolume, MountPath: "/var/lib/docker"}},
	}

	builder := corev1.Container{
		Name:            BuilderContainer,
		Image:           cfg.RunnerImage,
		ImagePullPolicy: corev1.PullPolicy(cfg.ImagePullPolicy),
		Env:             env,
		// Ready once the runner has delivered SUCCEEDED and only the cache
		// export is left: the Job's ready count is how dispatch tells a
		// reported build from a running one (JobState) without talking to
		// the runner.
		ReadinessProbe: &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{
				Command: []string{"test", "-s", contract.PodReportedFile},
			}},
			PeriodSeconds:    2,
			TimeoutSeconds:   2,
			FailureThreshold: 1,
		},
		Resources: res.builder,
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             ptr(true),
			RunAsUser:                ptr(int64(builderUID)),
			RunAsGroup:               ptr(int64(builderUID)),
			AllowPrivilegeEscalation: ptr(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}

	spec := corev1.PodSpec{
		RestartPolicy:  corev1.RestartPolicyNever,
		InitContainers: []corev1.Container{dind},
		Containers:     []corev1.Container{builder},
		Volumes: []corev1.Volume{{
			Name:         dockerStorageVolume,
			VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: res.storage}},
		}},
		// The runner talks to the callback URL, GitHub and the registry,
		// never to the Kubernetes API: no token, no service env vars.
		AutomountServiceAccountToken: ptr(false),
		EnableServiceLinks:           ptr(false),
		ServiceAccountName:           cfg.ServiceAccountName,
		// On SIGTERM (cancel, deadline) the runner still owes the platform
		// its terminal callback, with retries.
		TerminationGracePeriodSeconds: ptr(int64(cfg.TerminationGracePeriod / time.Second)),
		NodeSelector:                  cfg.NodeSelector,
		Tolerations:                   []corev1.Toleration(cfg.Tolerations),
		PriorityClassName:             cfg.PriorityClassName,
	}
	if cfg.RuntimeClassName != "" {
		spec.RuntimeClassName = ptr(cfg.RuntimeClassName)
	}
	for _, s := range cfg.ImagePullSecrets {
		spec.ImagePullSecrets = append(spec.ImagePullSecrets, corev1.LocalObjectReference{Name: s})
	}
	cfg.TestNode.apply(&spec)
	cfg.applyBackend(&spec, res)
	return spec
}

// RenderYAML writes the Job and the Secret as one multi-document YAML
// stream. With redact set, the Secret's values are replaced by REDACTED
// (as stringData, so the output stays an appliable shape); without it they
// are printed, base64-encoded as the API stores them.
func RenderYAML(w io.Writer, job *batchv1.Job, secret *corev1.Secret, redact bool) error {
	if redact && secret != nil {
		s := secret.DeepCopy()
		s.StringData = make(map[string]string, len(s.Data)+len(s.StringData))
		for k := range s.Data {
			s.StringData[k] = Redacted
		}
		for k := range secret.StringData {
			s.StringData[k] = Redacted
		}
		s.Data = nil
		secret = s
	}
	var docs []any
	if job != nil {
		docs = append(docs, job)
	}
	if secret != nil {
		docs = append(docs, secret)
	}
	for i, obj := range docs {
		out, err := manifestYAML(obj)
		if err != nil {
			return err
		}
		if i > 0 {
			out = append([]byte("---\n"), out...)
		}
		if _, err := w.Write(out); err != nil {
			return fmt.Errorf("write manifest: %w", err)
		}
	}
	return nil
}

// manifestYAML drops the empty status a typed object always serialises,
// which is noise in a manifest meant to be read or applied.
func manifestYAML(obj any) ([]byte, error) {
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	if st, ok := m["status"].(map[string]any); ok && len(st) == 0 {
		delete(m, "status")
	}
	out, err := yaml.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return out, nil
}

func ptr[T any](v T) *T { return &v }

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// sortedKeys is for deterministic error messages and output.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
