package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sethvargo/go-envconfig"

	"github.com/alternatefutures/af-builder/functions/dispatch/githubapp/githubtest"
	"github.com/alternatefutures/af-builder/functions/dispatch/webhook/webhooktest"
)

const renderRequest = `{
  "buildJobId": "cm9x2k7f30001",
  "installationId": 2311213,
  "repoOwner": "Codertocat",
  "repoName": "Hello-World",
  "commitSha": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
  "imageTag": "ghcr.io/acme/web:0d1a26e67d8f",
  "rootDirectory": "apps/web",
  "buildCommand": "npm run build"
}`

func TestRenderPrintsTheJobAndARedactedSecret(t *testing.T) {
	env := map[string]string{
		"CALLBACK_URL":   "https://api.example.com",
		"RUNNER_IMAGE":   "ghcr.io/alternatefutures/af-builder-runner:v1",
		"K8S_NAMESPACE":  "af-builds",
		"REGISTRY_USER":  "af-builder",
		"REGISTRY_TOKEN": registryToken,
	}
	file := filepath.Join(t.TempDir(), "request.json")
	if err := os.WriteFile(file, []byte(renderRequest), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{"file": {"render", "-f", file}, "stdin": {"render", "-f", "-"}} {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), args, envconfig.MapLookuper(env), strings.NewReader(renderRequest), &stdout, &stderr)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			out := stdout.String()
			for _, want := range []string{"kind: Job", "kind: Secret", "namespace: af-builds", "GHCR_TOKEN: REDACTED",
				"CALLBACK_TOKEN: REDACTED", "REPO_CLONE_URL: REDACTED", "value: https://api.example.com/internal/build-callback"} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, registryToken) {
				t.Error("the registry token is printed")
			}
		})
	}
}

func TestRenderNamesTheBadField(t *testing.T) {
	env := map[string]string{"CALLBACK_URL": "https://api.example.com", "RUNNER_IMAGE": "r:1"}
	var stdout, stderr bytes.Buffer
	bad := strings.Replace(renderRequest, `"apps/web"`, `"../x"`, 1)
	code := run(context.Background(), []string{"render", "-f", "-"}, envconfig.MapLookuper(env), strings.NewReader(bad), &stdout, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "rootDirectory") {
		t.Errorf("exit %d: %s", code, stderr.String())
	}
}

func TestMissingConfigurationIsNamedWithoutValues(t *testing.T) {
	var stdout, stderr bytes.Buffer
	env := map[string]string{"GITHUB_WEBHOOK_SECRET": webhookSecret, "API_AUTH_SECRET": "short"}
	code := run(context.Background(), []string{"serve", "--addr", "127.0.0.1:0"}, envconfig.MapLookuper(env), nil, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	msg := stderr.String()
	for _, v := range []string{"GITHUB_APP_ID", "GITHUB_APP_PRIVATE_KEY", "CALLBACK_URL", "CALLBACK_SECRET", "API_AUTH_SECRET"} {
		if !strings.Contains(msg, v) {
			t.Errorf("message does not name %s: %s", v, msg)
		}
	}
	if strings.Contains(msg, webhookSecret) || strings.Contains(msg, "short") {
		t.Errorf("message shows a value: %s", msg)
	}
}

// DRY_RUN runs the whole path (signature, lookup, a real token request)
// and prints what would have been created instead of creating it.
func TestDryRunPrintsTheJobForAPush(t *testing.T) {
	gh := githubtest.Start(t, appID)
	gh.AddInstallation(installationID, owner, repo)
	dir := t.TempDir()
	subs := filepath.Join(dir, "subs.yaml")
	os.WriteFile(subs, []byte(fmt.Sprintf("services:\n  - {id: web, repository: Codertocat/Hello-World, branch: main, installationId: %d, image: ghcr.io/acme/web}\n", installationID)), 0o600)
	key := filepath.Join(dir, "app.pem")
	os.WriteFile(key, gh.PrivateKeyPEM, 0o600)
	env := map[string]string{
		"GITHUB_WEBHOOK_SECRET":       webhookSecret,
		"GITHUB_APP_ID":               "4242",
		"GITHUB_APP_PRIVATE_KEY_FILE": key,
		"GITHUB_API_URL":              gh.URL,
		"CALLBACK_URL":                "https://api.example.com",
		"CALLBACK_SECRET":             callbackSecret,
		"API_AUTH_SECRET":             apiSecret,
		"SUBSCRIPTIONS_FILE":          subs,
		"RUNNER_IMAGE":                "ghcr.io/alternatefutures/af-builder-runner:v1",
		"DRY_RUN":                     "true",
	}
	var stdout, stderr bytes.Buffer
	d, err := newDispatch(context.Background(), envconfig.MapLookuper(env), &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.http)
	defer srv.Close()
	body := webhooktest.Push{InstallationID: installationID, Owner: owner, Repo: repo, After: commit,
		Commits: []webhooktest.Commit{{Message: "x", Modified: []string{"a"}}}}.Payload()
	resp, err := http.DefaultClient.Do(webhooktest.Request(srv.URL+"/webhooks/github", "push", "d-dry", body, []byte(webhookSecret)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	d.core.Wait() // the push's supersede logs after the answer
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("answer %d; logs:\n%s", resp.StatusCode, stderr.String())
	}
	out := stdout.String()
	if !strings.Contains(out, "kind: Job") || !strings.Contains(out, "REPO_CLONE_URL: REDACTED") {
		t.Errorf("dry run printed:\n%s", out)
	}
	if toks := gh.Tokens(); len(toks) != 1 || strings.Contains(out+stderr.String(), toks[0]) {
		t.Errorf("tokens %d, or the token was printed", len(toks))
	}
}

// The Lambda binary must stay lean: none of the runner's heavy
// dependencies, and no RPC entry point.
func TestBootstrapLinksNoDockerGitOrRPC(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-tags", "lambda.norpc", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		for _, banned := range []string{"github.com/moby/", "github.com/docker/", "github.com/go-git/", "github.com/moby/buildkit", "net/rpc"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("dispatch links %s", dep)
			}
		}
	}
}
