// Package dispatchtest is the world dispatch's tests run in: a real
// kube-apiserver (a fresh namespace of kubetest's), the fake GitHub API with
// the example installation, and a callback sink that checks tokens and
// stores logs as service-cloud-api does. The HTTP tests of package api,
// the process tests of package main and the load benchmark all start it
// here, with the same fixtures.
package dispatchtest

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes/kubetest"
	"github.com/alternatefutures/af-builder/functions/dispatch/githubapp"
	"github.com/alternatefutures/af-builder/functions/dispatch/githubapp/githubtest"
	"github.com/alternatefutures/af-builder/functions/dispatch/webhook/webhooktest"
	"github.com/alternatefutures/af-builder/internal/testinfra/callbacksink"
)

// Fixtures. The repository is GitHub's example's (webhooktest).
const (
	AppID          = 4242
	InstallationID = webhooktest.InstallationID
	Owner          = webhooktest.Owner
	Repo           = webhooktest.Repo
	CommitA        = webhooktest.CommitA
	CommitB        = webhooktest.CommitB

	WebhookSecret  = "whsec-test-webhook-secret-0123456789"
	APISecret      = "api-secret-for-tests-0123456789abcdef"
	CallbackSecret = "callback-secret-for-tests-0123456789ab"
	RegistryToken  = "ghp_RegistryTokenForTests0123456789abcd"
	RunnerImage    = "ghcr.io/alternatefutures/af-builder-runner:test"
)

// World is everything dispatch talks to.
type World struct {
	Kube      *kubetest.Env
	Namespace string
	// Client is an admin client without client-side throttling, for the
	// test's own reads and writes.
	Client k8s.Interface
	GitHub *githubtest.Server
	Sink   *callbacksink.Sink
}

// Start brings the world up for one test; everything goes with it.
func Start(t testing.TB) *World {
	t.Helper()
	env := kubetest.Start(t)
	ns := env.Namespace(t)
	// The shared admin config is throttled at client-go's default 5 QPS;
	// parallel tests would queue behind each other.
	rc := rest.CopyConfig(env.Config)
	rc.QPS, rc.Burst = -1, 0
	kube, err := k8s.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	gh := githubtest.Start(t, AppID)
	gh.AddInstallation(InstallationID, Owner, Repo)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	sink, err := callbacksink.Start(ctx, callbacksink.Options{Secret: []byte(CallbackSecret)})
	if err != nil {
		t.Fatal(err)
	}
	return &World{Kube: env, Namespace: ns, Client: kube, GitHub: gh, Sink: sink}
}

// CallbackBase is the sink as dispatch's CALLBACK_URL (a base URL).
func (w *World) CallbackBase() string { return strings.TrimSuffix(w.Sink.URL(), callbacksink.Path) }

// Config is the Kubernetes executor's default configuration on the
// world's namespace.
func (w *World) Config() kubernetes.Config {
	c := kubernetes.DefaultConfig()
	c.Namespace = w.Namespace
	c.RunnerImage = RunnerImage
	return c
}

// Executor is the Kubernetes executor on the world's namespace, over
// client (nil: the unthrottled admin client).
func (w *World) Executor(t testing.TB, client k8s.Interface) *kubernetes.Executor {
	t.Helper()
	if client == nil {
		client = w.Client
	}
	e, err := kubernetes.New(client, w.Config())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Minter mints installation tokens from the fake GitHub.
func (w *World) Minter(t testing.TB) *githubapp.Minter {
	t.Helper()
	m, err := githubapp.New(githubapp.Options{AppID: AppID, PrivateKey: w.GitHub.PrivateKeyPEM, APIURL: w.GitHub.URL})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// ProcessEnv is the environment of a `dispatch` process in this world:
// secrets partly from files (as the Lambda template mounts them), the
// static subscriptions given, the Kubernetes executor on the namespace
// through a kubeconfig.
func (w *World) ProcessEnv(t testing.TB, subscriptionsYAML string) []string {
	t.Helper()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return []string{
		"HOME=" + dir,
		"PATH=" + os.Getenv("PATH"),
		"GITHUB_WEBHOOK_SECRET=" + WebhookSecret,
		"GITHUB_APP_ID=" + strconv.Itoa(AppID),
		"GITHUB_APP_PRIVATE_KEY_FILE=" + write("app.pem", string(w.GitHub.PrivateKeyPEM)),
		"CALLBACK_SECRET_FILE=" + write("callback-secret", CallbackSecret+"\n"),
		"GITHUB_API_URL=" + w.GitHub.URL,
		"CALLBACK_URL=" + w.CallbackBase(),
		"API_AUTH_SECRET=" + APISecret,
		"REGISTRY_USER=af-builder",
		"REGISTRY_TOKEN=" + RegistryToken,
		"SUBSCRIPTIONS_FILE=" + write("subscriptions.yaml", subscriptionsYAML),
		"K8S_NAMESPACE=" + w.Namespace,
		"RUNNER_IMAGE=" + RunnerImage,
		"K8S_AUTH=kubeconfig",
		"K8S_KUBECONFIG=" + kubetest.WriteKubeconfig(t, w.Kube.Config),
	}
}

// WebService is the static subscription of one service, "web", building
// the example repository's main branch from apps/web.
func WebService() string {
	return `services:
  - id: web
    repository: ` + Owner + "/" + Repo + `
    branch: main
    installationId: ` + strconv.Itoa(InstallationID) + `
    image: ghcr.io/acme/u1--codertocat-hello-world
    rootDirectory: apps/web
`
}
