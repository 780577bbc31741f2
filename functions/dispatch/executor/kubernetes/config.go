package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/alternatefutures/af-builder/shared/contract"
)

// Config is how builds are laid out on the cluster: the Job, its pod and
// its Secret. Load it with LoadConfig (environment) or start from
// DefaultConfig. How dispatch reaches the API server is kubeclient's.
type Config struct {
	// Namespace holds every build's Job and Secret; the RBAC in
	// infra/k8s grants dispatch nothing outside it.
	Namespace string `env:"K8S_NAMESPACE, default=af-builds"`

	RunnerImage string `env:"RUNNER_IMAGE"`
	DindImage   string `env:"DIND_IMAGE, default=docker:dind"`
	// ImagePullPolicy applies to both containers: Always, IfNotPresent or Never.
	ImagePullPolicy string `env:"K8S_IMAGE_PULL_POLICY, default=IfNotPresent"`

	// ServiceAccountName runs the build pods; empty means the namespace's
	// default. Its token is never mounted either way.
	ServiceAccountName string            `env:"K8S_BUILD_SERVICE_ACCOUNT"`
	ImagePullSecrets   []string          `env:"K8S_IMAGE_PULL_SECRETS"`
	NodeSelector       map[string]string `env:"K8S_NODE_SELECTOR"`
	// Tolerations is a JSON array of core/v1 Tolerations.
	Tolerations       Tolerations `env:"K8S_TOLERATIONS"`
	PriorityClassName string      `env:"K8S_PRIORITY_CLASS"`
	// RuntimeClassName lets a cluster run the privileged dind pods under a
	// sandboxing runtime (Kata, gVisor, sysbox) instead of runc.
	RuntimeClassName string `env:"K8S_RUNTIME_CLASS"`

	// Resources, as Kubernetes quantities; empty leaves one unset. The
	// runner only clones and streams; the engine (dind) does the building.
	RunnerCPURequest    string `env:"RUNNER_CPU_REQUEST, default=100m"`
	RunnerMemoryRequest string `env:"RUNNER_MEMORY_REQUEST, default=256Mi"`
	RunnerCPULimit      string `env:"RUNNER_CPU_LIMIT, default=1"`
	RunnerMemoryLimit   string `env:"RUNNER_MEMORY_LIMIT, default=2Gi"`
	DindCPURequest      string `env:"DIND_CPU_REQUEST, default=1"`
	DindMemoryRequest   string `env:"DIND_MEMORY_REQUEST, default=2Gi"`
	DindCPULimit        string `env:"DIND_CPU_LIMIT, default=2"`
	DindMemoryLimit     string `env:"DIND_MEMORY_LIMIT, default=6Gi"`
	// DindStorage bounds the engine's emptyDir (images, layers, cache) and
	// is requested as ephemeral storage so the scheduler accounts for it.
	DindStorage string `env:"DIND_STORAGE, default=20Gi"`

	// TTLAfterFinished keeps a finished Job (and, through its owner
	// reference, its Secret) around for inspection, then lets it go.
	TTLAfterFinished time.Duration `env:"K8S_JOB_TTL, default=1h"`
	// DeadlineMargin is added to the build's BUILD_TIMEOUT for the Job's
	// activeDeadlineSeconds: the runner enforces the timeout itself and
	// reports it; the deadline is the backstop for a runner that cannot.
	DeadlineMargin time.Duration `env:"K8S_JOB_DEADLINE_MARGIN, default=10m"`
	// StartTimeout is how long a build pod may wait for a container that
	// cannot start (its image cannot be pulled, its Secret is missing)
	// before the reaper reports the build FAILED and deletes its Job, where
	// the Job's deadline would come only after BUILD_TIMEOUT. Slow pulls
	// are not counted, only failed ones.
	StartTimeout time.Duration `env:"K8S_START_TIMEOUT, default=5m"`
	// TerminationGracePeriod is what the runner gets after SIGTERM to send
	// its terminal callback, retries included.
	TerminationGracePeriod time.Duration `env:"K8S_TERMINATION_GRACE_PERIOD, default=2m"`

	// TestNode is for the single-node test suite only (testnode.go).
	TestNode TestNode

	// Backend is the build engine beside the runner: docker (dind) or
	// buildkit (rootless buildkitd; buildkit.go).
	Backend  string `env:"BUILD_BACKEND, default=docker"`
	BuildKit BuildKitConfig
}

// LoadConfig reads Config from the environment (envconfig.OsLookuper()) and
// validates it.
func LoadConfig(ctx context.Context, lookup envconfig.Lookuper) (Config, error) {
	var c Config
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &c, Lookuper: lookup}); err != nil {
		return c, fmt.Errorf("kubernetes executor config: %w", err)
	}
	return c, c.Validate()
}

// DefaultConfig is Config with every default applied and nothing read from
// the environment; RunnerImage is still to be set.
func DefaultConfig() Config {
	c, err := LoadConfig(context.Background(), envconfig.MapLookuper(nil))
	if err != nil && c.Namespace == "" {
		// Only reachable if a default tag above stops parsing.
		panic(err)
	}
	return c
}

// minTerminationGrace is the shortest grace period a build pod may get: the
// runner, on SIGTERM, first unwinds its build (the engine stops a build in
// about a second) and then gives its terminal callback up to
// contract.ShutdownReportBudget, retries included.
const minTerminationGrace = contract.ShutdownReportBudget + 10*time.Second

// Validate reports every problem at once, by variable name.
func (c Config) Validate() error {
	var errs []error
	bad := func(v, msg string, args ...any) {
		errs = append(errs, fmt.Errorf("%s %s", v, fmt.Sprintf(msg, args...)))
	}
	if msgs := validation.IsDNS1123Label(c.Namespace); len(msgs) > 0 {
		bad("K8S_NAMESPACE", "is not a namespace name: %s", strings.Join(msgs, "; "))
	}
	if c.RunnerImage == "" {
		bad("RUNNER_IMAGE", "is required")
	}
	if c.DindImage == "" {
		bad("DIND_IMAGE", "is required")
	}
	switch corev1.PullPolicy(c.ImagePullPolicy) {
	case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		bad("K8S_IMAGE_PULL_POLICY", "must be Always, IfNotPresent or Never")
	}
	for v, name := range map[string]string{
		"K8S_BUILD_SERVICE_ACCOUNT": c.ServiceAccountName,
		"K8S_PRIORITY_CLASS":        c.PriorityClassName,
		"K8S_RUNTIME_CLASS":         c.RuntimeClassName,
	} {
		if name == "" {
			continue
		}
		if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
			bad(v, "is not a valid name: %s", strings.Join(msgs, "; "))
		}
	}
	for _, s := range c.ImagePullSecrets {
		if msgs := validation.IsDNS1123Subdomain(s); len(msgs) > 0 {
			bad("K8S_IMAGE_PULL_SECRETS", "entry %q is not a valid name", s)
		}
	}
	for _, k := range sortedKeys(c.NodeSelector) {
		if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
			bad("K8S_NODE_SELECTOR", "key %q is not a label key", k)
		}
		if msgs := validation.IsValidLabelValue(c.NodeSelector[k]); len(msgs) > 0 {
			bad("K8S_NODE_SELECTOR", "value for %q is not a label value", k)
		}
	}
	if _, err := c.resources(); err != nil {
		errs = append(errs, err)
	}
	if c.TTLAfterFinished < 0 {
		bad("K8S_JOB_TTL", "must not be negative")
	}
	if c.DeadlineMargin < time.Minute {
		bad("K8S_JOB_DEADLINE_MARGIN", "must be at least 1m, or the deadline can kill a runner that is reporting a timeout")
	}
	if c.StartTimeout <= 0 {
		bad("K8S_START_TIMEOUT", "must be positive")
	}
	if c.TerminationGracePeriod < minTerminationGrace {
		bad("K8S_TERMINATION_GRACE_PERIOD", "must be at least %s: after SIGTERM the runner stops its build and then takes up to %s to deliver its final callback", minTerminationGrace, contract.ShutdownReportBudget)
	}
	if err := c.TestNode.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.validateBackend(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("kubernetes executor config: %w", errors.Join(errs...))
	}
	return nil
}

func (c Config) resources() (podResources, error) {
	var errs []error
	q := func(v, s string) *resource.Quantity {
		if s == "" {
			return nil
		}
		qty, err := resource.ParseQuantity(s)
		if err != nil || qty.Sign() < 0 {
			errs = append(errs, fmt.Errorf("%s %q is not a quantity like 500m or 2Gi", v, s))
			return nil
		}
		return &qty
	}
	list := func(pairs ...any) corev1.ResourceList {
		l := corev1.ResourceList{}
		for i := 0; i < len(pairs); i += 2 {
			if qty := pairs[i+1].(*resource.Quantity); qty != nil {
				l[pairs[i].(corev1.ResourceName)] = *qty
			}
		}
		if len(l) == 0 {
			return nil
		}
		return l
	}
	storage := q("DIND_STORAGE", c.DindStorage)
	var r podResources
	r.builder = corev1.ResourceRequirements{
		Requests: list(corev1.ResourceCPU, q("RUNNER_CPU_REQUEST", c.RunnerCPURequest), corev1.ResourceMemory, q("RUNNER_MEMORY_REQUEST", c.RunnerMemoryRequest)),
		Limits:   list(corev1.ResourceCPU, q("RUNNER_CPU_LIMIT", c.RunnerCPULimit), corev1.ResourceMemory, q("RUNNER_MEMORY_LIMIT", c.RunnerMemoryLimit)),
	}
	r.dind = corev1.ResourceRequirements{
		Requests: list(corev1.ResourceCPU, q("DIND_CPU_REQUEST", c.DindCPURequest), corev1.ResourceMemory, q("DIND_MEMORY_REQUEST", c.DindMemoryRequest), corev1.ResourceEphemeralStorage, storage),
		Limits:   list(corev1.ResourceCPU, q("DIND_CPU_LIMIT", c.DindCPULimit), corev1.ResourceMemory, q("DIND_MEMORY_LIMIT", c.DindMemoryLimit)),
	}
	r.storage = storage
	for _, rr := range []corev1.ResourceRequirements{r.builder, r.dind} {
		for name, req := range rr.Requests {
			if lim, ok := rr.Limits[name]; ok && req.Cmp(lim) > 0 {
				errs = append(errs, fmt.Errorf("%s request %s exceeds its limit %s", name, req.String(), lim.String()))
			}
		}
	}
	return r, errors.Join(errs...)
}

// Tolerations decodes K8S_TOLERATIONS from JSON.
type Tolerations []corev1.Toleration

// EnvDecode implements envconfig.Decoder.
func (t *Tolerations) EnvDecode(val string) error {
	if strings.TrimSpace(val) == "" {
		*t = nil
		return nil
	}
	var out []corev1.Toleration
	if err := json.Unmarshal([]byte(val), &out); err != nil {
		return fmt.Errorf("K8S_TOLERATIONS must be a JSON array of tolerations: %w", err)
	}
	*t = out
	return nil
}
