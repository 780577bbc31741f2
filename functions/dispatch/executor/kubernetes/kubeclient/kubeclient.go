// Package kubeclient says how dispatch reaches the Kubernetes API server:
// from inside the cluster, from a kubeconfig file, or from AWS Lambda with
// an EKS token (package ekstoken). Only this package, not the Job renderer,
// depends on the AWS SDK.
package kubeclient

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/transport"

	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes/ekstoken"
)

// Load reads Config through lookup and validates what can be checked
// without contacting anything.
func Load(ctx context.Context, lookup envconfig.Lookuper) (Config, error) {
	var c Config
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &c, Lookuper: lookup}); err != nil {
		return c, fmt.Errorf("kubernetes client config: %w", err)
	}
	if _, err := c.mode(); err != nil && c.Mode != ModeAuto {
		return c, fmt.Errorf("kubernetes client config: %w", err)
	}
	if c.Timeout < 0 {
		return c, errors.New("kubernetes client config: K8S_REQUEST_TIMEOUT must not be negative")
	}
	if c.QPS > 0 && c.Burst < 1 {
		return c, errors.New("kubernetes client config: K8S_BURST must be at least 1 when K8S_QPS is positive")
	}
	return c, nil
}

// Client modes.
const (
	ModeAuto       = ""
	ModeInCluster  = "in-cluster"
	ModeKubeconfig = "kubeconfig"
	ModeEKS        = "eks"
)

// Config says how dispatch reaches the API server: from inside the
// cluster (a pod's ServiceAccount), from a kubeconfig file (local runs,
// tests), or from AWS Lambda with an EKS token minted from the function's
// IAM role.
type Config struct {
	// Mode is in-cluster, kubeconfig or eks. Empty picks the first that
	// applies: eks when K8S_EKS_CLUSTER is set, kubeconfig when a path is
	// set, in-cluster when running in a pod.
	Mode string `env:"K8S_AUTH"`

	// Kubeconfig is the file for kubeconfig mode; KUBECONFIG is honoured
	// when it is empty.
	Kubeconfig string `env:"K8S_KUBECONFIG"`
	// KubeconfigEnv, ServiceHost and AWSRegion are the standard variables
	// the modes fall back to, read through the same lookup as the rest.
	KubeconfigEnv string `env:"KUBECONFIG"`
	ServiceHost   string `env:"KUBERNETES_SERVICE_HOST"`
	AWSRegion     string `env:"AWS_REGION"`
	Context       string `env:"K8S_CONTEXT"`

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
	// QPS and Burst are dispatch's own client-side limit on API requests.
	// A build costs about four (create the Job suspended, its Secret,
	// release it, list the branch's builds to supersede), so 20/40 held
	// fewer than 7 webhooks a second and queued every answer behind the
	// limiter. The API server protects itself with API Priority and
	// Fairness (a ServiceAccount's requests go to the workload-low level,
	// hundreds of concurrent seats on a default server), queueing or
	// answering 429, which client-go retries within the request's time.
	// The default leaves that to it and only stops a runaway loop;
	// a negative QPS turns the client-side limit off.
	QPS   float32 `env:"K8S_QPS, default=500"`
	Burst int     `env:"K8S_BURST, default=1000"`
}

func (c Config) mode() (string, error) {
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
	case c.Kubeconfig != "" || c.KubeconfigEnv != "":
		return ModeKubeconfig, nil
	case c.ServiceHost != "":
		return ModeInCluster, nil
	}
	return "", errors.New("no Kubernetes API configured: set K8S_KUBECONFIG, K8S_EKS_CLUSTER, or run in a pod")
}

// RESTConfig builds the client configuration. It does no network I/O and,
// in eks mode, does not even load AWS credentials: that happens on the
// first API request, so a Lambda cold start that never reaches Kubernetes
// (a ping, a rejected webhook) does not pay for it.
func (c Config) RESTConfig() (*rest.Config, error) {
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
		switch {
		case c.Kubeconfig != "":
			rules.ExplicitPath = c.Kubeconfig
		case c.KubeconfigEnv != "":
			rules.Precedence = filepath.SplitList(c.KubeconfigEnv)
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
	if c.QPS != 0 {
		cfg.QPS, cfg.Burst = c.QPS, c.Burst
	}
	cfg.UserAgent = "af-dispatch"
	return cfg, nil
}

func (c Config) eksConfig() (*rest.Config, error) {
	region := c.EKSRegion
	if region == "" {
		region = c.AWSRegion
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
	ts := &ekstoken.Source{Cluster: c.EKSCluster, Region: region}
	return &rest.Config{
		Host:            c.APIServer,
		TLSClientConfig: rest.TLSClientConfig{CAData: ca},
		// Minting signs with the role's credentials (and loads them the first
		// time), so one token serves until shortly before EKS stops
		// accepting it; a 401 drops it so the next request mints a new one.
		WrapTransport: transport.ResettableTokenSourceWrapTransport(transport.NewCachedTokenSource(ts)),
	}, nil
}
