package kubernetes

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/sethvargo/go-envconfig"
	"golang.org/x/oauth2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/transport"
)

// Config is how builds are laid out on the cluster. Load it with
// LoadConfig (environment) or start from DefaultConfig.
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
	// TerminationGracePeriod is what the runner gets after SIGTERM to send
	// its terminal callback, retries included.
	TerminationGracePeriod time.Duration `env:"K8S_TERMINATION_GRACE_PERIOD, default=2m"`

	Client ClientConfig

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
// about a second) and then gives its terminal callback up to 20 s
// (terminalOnShutdown in runner/main.go), retries included.
const minTerminationGrace = 30 * time.Second

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
	if c.TerminationGracePeriod < minTerminationGrace {
		bad("K8S_TERMINATION_GRACE_PERIOD", "must be at least %s: after SIGTERM the runner stops its build and then takes up to 20s to deliver its final callback", minTerminationGrace)
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

// Client modes.
const (
	ModeAuto       = ""
	ModeInCluster  = "in-cluster"
	ModeKubeconfig = "kubeconfig"
	ModeEKS        = "eks"
)

// ClientConfig says how dispatch reaches the API server: from inside the
// cluster (a pod's ServiceAccount), from a kubeconfig file (local runs,
// tests), or from AWS Lambda with an EKS token minted from the function's
// IAM role.
type ClientConfig struct {
	// Mode is in-cluster, kubeconfig or eks. Empty picks the first that
	// applies: eks when K8S_EKS_CLUSTER is set, kubeconfig when a path is
	// set, in-cluster when running in a pod.
	Mode string `env:"K8S_AUTH"`

	// Kubeconfig is the file for kubeconfig mode; KUBECONFIG is honoured
	// when it is empty.
	Kubeconfig string `env:"K8S_KUBECONFIG"`
	Context    string `env:"K8S_CONTEXT"`

	// For eks mode: the cluster's endpoint and base64 CA bundle (as
	// `aws eks describe-cluster` prints them; configured rather than looked
	// up, so dispatch needs no eks:DescribeCluster and no extra call), its
	// name, and its region (AWS_REGION when empty, which Lambda sets).
	APIServer  string `env:"K8S_API_SERVER"`
	CAData     string `env:"K8S_CA_DATA"`
	EKSCluster string `env:"K8S_EKS_CLUSTER"`
	EKSRegion  string `env:"K8S_EKS_REGION"`

	// Timeout bounds each API request. A webhook must be answered within
	// 10 s and Submit makes up to four requests, so keep it short.
	Timeout time.Duration `env:"K8S_REQUEST_TIMEOUT, default=5s"`
	QPS     float32       `env:"K8S_QPS, default=20"`
	Burst   int           `env:"K8S_BURST, default=40"`
}

func (c ClientConfig) mode() (string, error) {
	switch c.Mode {
	case ModeInCluster, ModeKubeconfig, ModeEKS:
		return c.Mode, nil
	case ModeAuto:
	default:
		return "", fmt.Errorf("K8S_AUTH %q must be in-cluster, kubeconfig or eks", c.Mode)
	}
	switch {
	case c.EKSCluster != "":
		return ModeEKS, nil
	case c.Kubeconfig != "" || os.Getenv("KUBECONFIG") != "":
		return ModeKubeconfig, nil
	case os.Getenv("KUBERNETES_SERVICE_HOST") != "":
		return ModeInCluster, nil
	}
	return "", errors.New("no Kubernetes API configured: set K8S_KUBECONFIG, K8S_EKS_CLUSTER, or run in a pod")
}

// RESTConfig builds the client configuration. It does no network I/O and,
// in eks mode, does not even load AWS credentials: that happens on the
// first API request, so a Lambda cold start that never reaches Kubernetes
// (a ping, a rejected webhook) does not pay for it.
func (c ClientConfig) RESTConfig() (*rest.Config, error) {
	mode, err := c.mode()
	if err != nil {
		return nil, err
	}
	var cfg *rest.Config
	switch mode {
	case ModeInCluster:
		cfg, err = rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster Kubernetes config: %w", err)
		}
	case ModeKubeconfig:
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		if c.Kubeconfig != "" {
			rules.ExplicitPath = c.Kubeconfig
		}
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
			&clientcmd.ConfigOverrides{CurrentContext: c.Context}).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("load kubeconfig: %w", err)
		}
	case ModeEKS:
		cfg, err = c.eksConfig()
		if err != nil {
			return nil, err
		}
	}
	if c.Timeout > 0 {
		cfg.Timeout = c.Timeout
	}
	if c.QPS > 0 {
		cfg.QPS, cfg.Burst = c.QPS, c.Burst
	}
	cfg.UserAgent = "af-dispatch"
	return cfg, nil
}

func (c ClientConfig) eksConfig() (*rest.Config, error) {
	region := c.EKSRegion
	if region == "" {
		region = os.Getenv("AWS_REGION")
	}
	var errs []error
	if c.APIServer == "" || !strings.HasPrefix(c.APIServer, "https://") {
		errs = append(errs, errors.New("K8S_API_SERVER must be the cluster's https endpoint"))
	}
	ca, err := base64.StdEncoding.DecodeString(strings.TrimSpace(c.CAData))
	if err != nil || len(ca) == 0 {
		errs = append(errs, errors.New("K8S_CA_DATA must be the cluster's base64-encoded CA bundle"))
	}
	if c.EKSCluster == "" {
		errs = append(errs, errors.New("K8S_EKS_CLUSTER is required"))
	}
	if region == "" {
		errs = append(errs, errors.New("K8S_EKS_REGION or AWS_REGION is required"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("eks mode: %w", errors.Join(errs...))
	}
	ts := &EKSTokenSource{Cluster: c.EKSCluster, Region: region}
	return &rest.Config{
		Host:            c.APIServer,
		TLSClientConfig: rest.TLSClientConfig{CAData: ca},
		// Minting signs with the role's credentials (and loads them the first
		// time), so one token serves until shortly before EKS stops
		// accepting it; a 401 drops it so the next request mints a new one.
		WrapTransport: transport.ResettableTokenSourceWrapTransport(transport.NewCachedTokenSource(ts)),
	}, nil
}

// EKS tokens are accepted for 15 minutes after signing; refresh a minute
// early so a token is never used at the edge of its life.
const (
	eksTokenPrefix   = "k8s-aws-v1."
	eksTokenLifetime = 14 * time.Minute
	eksClusterHeader = "x-k8s-aws-id"
)

// EKSTokenSource mints the bearer token EKS accepts for an IAM identity: a
// presigned STS GetCallerIdentity URL, bound to the cluster by the signed
// x-k8s-aws-id header, base64url-encoded behind "k8s-aws-v1." (the format
// of `aws eks get-token` and aws-iam-authenticator). The token carries a
// signature, never the AWS secret key.
type EKSTokenSource struct {
	Cluster string
	Region  string
	// Credentials overrides the SDK's default chain (environment, web
	// identity, container and instance roles); tests set static ones.
	Credentials aws.CredentialsProvider
	// Now is the signing clock; nil means time.Now.
	Now func() time.Time

	mu     sync.Mutex
	client *sts.PresignClient
}

// Token implements oauth2.TokenSource, as client-go's caching token
// transport expects.
func (s *EKSTokenSource) Token() (*oauth2.Token, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.TokenContext(ctx)
}

// TokenContext mints a fresh token.
func (s *EKSTokenSource) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	presigner, err := s.presigner(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	signedAt := now()
	req, err := presigner.PresignGetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}, func(o *sts.PresignOptions) {
		o.ClientOptions = append(o.ClientOptions, func(so *sts.Options) {
			so.APIOptions = append(so.APIOptions,
				smithyhttp.SetHeaderValue(eksClusterHeader, s.Cluster),
				// The presigner hoists X-Amz-* headers into the query.
				// EKS ignores the value (it allows 15 min) but requires it.
				smithyhttp.SetHeaderValue("X-Amz-Expires", "60"),
			)
		})
		o.Presigner = clockedPresigner{HTTPPresignerV4: o.Presigner, now: signedAt}
	})
	if err != nil {
		// The SDK's error names the failing credential provider, not secrets.
		return nil, fmt.Errorf("mint EKS token for cluster %s: %w", s.Cluster, err)
	}
	return &oauth2.Token{
		AccessToken: eksTokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(req.URL)),
		TokenType:   "Bearer",
		Expiry:      signedAt.Add(eksTokenLifetime),
	}, nil
}

// presigner loads the AWS configuration on first use and keeps it; a
// failure is not cached, so a transient credential error heals.
func (s *EKSTokenSource) presigner(ctx context.Context) (*sts.PresignClient, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil {
		return s.client, nil
	}
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(s.Region)}
	if s.Credentials != nil {
		opts = append(opts, awsconfig.WithCredentialsProvider(s.Credentials))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration for EKS auth: %w", err)
	}
	s.client = sts.NewPresignClient(sts.NewFromConfig(cfg))
	return s.client, nil
}

// clockedPresigner pins the signing time to the one the token's expiry is
// computed from (and lets tests fix it).
type clockedPresigner struct {
	sts.HTTPPresignerV4
	now time.Time
}

func (p clockedPresigner) PresignHTTP(ctx context.Context, creds aws.Credentials, r *http.Request, payloadHash, service, region string, _ time.Time, optFns ...func(*v4.SignerOptions)) (string, http.Header, error) {
	return p.HTTPPresignerV4.PresignHTTP(ctx, creds, r, payloadHash, service, region, p.now, optFns...)
}
