package kubernetes

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"
	corev1 "k8s.io/api/core/v1"
)

func TestLoadConfigFromEnvironment(t *testing.T) {
	cfg, err := LoadConfig(context.Background(), envconfig.MapLookuper(map[string]string{
		"K8S_NAMESPACE":          "builds",
		"RUNNER_IMAGE":           "ghcr.io/af/runner:1.2.3",
		"DIND_IMAGE":             "docker:27-dind",
		"K8S_IMAGE_PULL_SECRETS": "ghcr-pull,other",
		"K8S_NODE_SELECTOR":      "workload:builds,kubernetes.io/arch:amd64",
		"K8S_TOLERATIONS":        `[{"key":"builds","operator":"Exists","effect":"NoSchedule"}]`,
		"DIND_MEMORY_LIMIT":      "8Gi",
		"RUNNER_CPU_LIMIT":       "",
		"K8S_JOB_TTL":            "30m",
		"K8S_AUTH":               "kubeconfig",
		"K8S_REQUEST_TIMEOUT":    "3s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	job, secret, err := Render(cfg, sampleBuild())
	if err != nil {
		t.Fatal(err)
	}
	pod := job.Spec.Template.Spec
	switch {
	case job.Namespace != "builds" || secret.Namespace != "builds":
		t.Errorf("namespace = %s/%s", job.Namespace, secret.Namespace)
	case pod.Containers[0].Image != "ghcr.io/af/runner:1.2.3" || pod.InitContainers[0].Image != "docker:27-dind":
		t.Errorf("images = %s, %s", pod.Containers[0].Image, pod.InitContainers[0].Image)
	case len(pod.ImagePullSecrets) != 2 || pod.ImagePullSecrets[0].Name != "ghcr-pull":
		t.Errorf("imagePullSecrets = %v", pod.ImagePullSecrets)
	case pod.NodeSelector["workload"] != "builds" || pod.NodeSelector["kubernetes.io/arch"] != "amd64":
		t.Errorf("nodeSelector = %v", pod.NodeSelector)
	case len(pod.Tolerations) != 1 || pod.Tolerations[0].Key != "builds" || pod.Tolerations[0].Effect != corev1.TaintEffectNoSchedule:
		t.Errorf("tolerations = %v", pod.Tolerations)
	case pod.InitContainers[0].Resources.Limits.Memory().String() != "8Gi":
		t.Errorf("dind memory limit = %v", pod.InitContainers[0].Resources.Limits.Memory())
	case !pod.Containers[0].Resources.Limits.Cpu().IsZero():
		t.Errorf("an empty RUNNER_CPU_LIMIT should leave the limit unset, got %v", pod.Containers[0].Resources.Limits.Cpu())
	case *job.Spec.TTLSecondsAfterFinished != 1800:
		t.Errorf("ttl = %d", *job.Spec.TTLSecondsAfterFinished)
	}
}

func TestConfigValidationNamesEveryProblem(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "RUNNER_IMAGE is required") {
		t.Errorf("DefaultConfig without a runner image: %v", err)
	}
	cfg.RunnerImage = "ghcr.io/af/runner:1"
	cfg.Namespace = "Not_A_Namespace"
	cfg.DindMemoryLimit = "lots"
	cfg.RunnerCPURequest = "2"
	cfg.ImagePullPolicy = "Sometimes"
	cfg.TerminationGracePeriod = time.Second
	cfg.StartTimeout = 0
	cfg.NodeSelector = map[string]string{"ok": "bad value"}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"K8S_NAMESPACE", "DIND_MEMORY_LIMIT", "cpu request 2 exceeds its limit 1",
		"K8S_IMAGE_PULL_POLICY", "K8S_TERMINATION_GRACE_PERIOD", "K8S_START_TIMEOUT", "K8S_NODE_SELECTOR"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
	if _, err := New(nil, cfg); err == nil {
		t.Error("New accepted an invalid config")
	}
}

// The runner needs up to 20 s after SIGTERM for its terminal callback, after
// it has stopped the build: a shorter grace period kills it mid-report.
func TestTerminationGraceLeavesTheRunnerItsFinalCallback(t *testing.T) {
	for _, tc := range []struct {
		grace time.Duration
		ok    bool
	}{{10 * time.Second, false}, {20 * time.Second, false}, {29 * time.Second, false}, {30 * time.Second, true}, {2 * time.Minute, true}} {
		cfg := sampleConfig()
		cfg.TerminationGracePeriod = tc.grace
		err := cfg.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("grace %s: Validate = %v, want ok=%v", tc.grace, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "K8S_TERMINATION_GRACE_PERIOD") {
			t.Errorf("grace %s: error does not name the variable: %v", tc.grace, err)
		}
	}
}

func TestTolerationsMustBeJSON(t *testing.T) {
	_, err := LoadConfig(context.Background(), envconfig.MapLookuper(map[string]string{
		"RUNNER_IMAGE": "r:1", "K8S_TOLERATIONS": "builds=true:NoSchedule",
	}))
	if err == nil || !strings.Contains(err.Error(), "K8S_TOLERATIONS") {
		t.Errorf("err = %v", err)
	}
}
