package kubernetes

import (
	"testing"
	"time"

	"github.com/alternatefutures/af-builder/functions/dispatch/executor"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes/kubetest"
	"github.com/alternatefutures/af-builder/shared/contract"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

const (
	sampleCallbackToken = "c2FtcGxlLWJ1aWxk.c2lnbmF0dXJlLW9mLXRoZS1jYWxsYmFjay10b2tlbg"
	sampleInstallToken  = "ghs_SampleInstallationToken0123456789abcd"
	sampleRegistryToken = "ghp_SampleRegistryToken0123456789abcdefg"
	sampleCommit        = "0123456789abcdef0123456789abcdef01234567"
)

// sampleBuild is the fixed request behind infra/k8s/builder/job.template.yaml
// and the base of most tests.
func sampleBuild() executor.Build {
	return executor.Build{
		Env: contract.Env{
			BuildJobID:     "cm9x2k7f30001abcd1234efgh",
			CallbackURL:    "https://api.alternatefutures.ai/internal/build-callback",
			CallbackToken:  sampleCallbackToken,
			RepoCloneURL:   "https://x-access-token:" + sampleInstallToken + "@github.com/acme/web-app.git",
			RepoRef:        sampleCommit,
			ImageTag:       "ghcr.io/alternatefutures/user123--acme-web-app:0123456789ab",
			RegistryUser:   "af-builder",
			RegistryToken:  sampleRegistryToken,
			RootDirectory:  "apps/web",
			BuildCommand:   "npm run build",
			StartCommand:   "npm start",
			RepoSourceURL:  "https://github.com/acme/web-app",
			RepoOwner:      "acme",
			RepoName:       "web-app",
			RunnerDefaults: contract.RunnerDefaults{LogStreamInterval: 5 * time.Second, BuildTimeout: 30 * time.Minute},
		},
		ServiceID: "svc_01hzx5qk3m",
		Branch:    "feature/new-landing",
		CommitSHA: sampleCommit,
		Trigger:   "push",
	}
}

// sampleConfig is DefaultConfig with a runner image: what a deployment that
// sets only RUNNER_IMAGE gets.
func sampleConfig() Config {
	c := DefaultConfig()
	c.RunnerImage = "ghcr.io/alternatefutures/af-builder-runner:v1"
	return c
}

// secretValues are the values that must never appear outside the Secret.
func secretValues(b executor.Build) []string {
	var out []string
	for _, v := range b.Env.Vars() {
		if v.Secret {
			out = append(out, v.Value)
		}
	}
	return append(out, b.Env.Secrets()...)
}
