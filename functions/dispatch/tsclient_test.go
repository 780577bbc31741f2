package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes"
)

// nodeBin finds Node.js. Missing, the test fails rather than skips: the
// client is part of what is shipped (scripts/deps.sh installs nodejs).
func nodeBin(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"node", "nodejs"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("node is not installed: the TypeScript client cannot be tested (apt-get install -y nodejs npm, or scripts/deps.sh)")
	return ""
}

// compileClient compiles clients/typescript with tsc from the npm registry
// (scripts/typescript.sh caches it) into a fresh directory.
func compileClient(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(root, "scripts", "typescript.sh")).Output()
	if err != nil {
		t.Fatalf("scripts/typescript.sh: %v", err)
	}
	tsc := strings.TrimSpace(string(out))
	dir := t.TempDir()
	cmd := exec.Command(nodeBin(t), tsc, "-p", filepath.Join(root, "clients", "typescript"), "--outDir", dir)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tsc: %v\n%s", err, b)
	}
	// The compiled files are ES modules.
	os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"type":"module"}`), 0o644)
	return dir
}

// The TypeScript client, compiled with tsc and run by Node against the real
// `dispatch serve` on a real kube-apiserver: it creates a build, a repeat
// creates nothing, the same id with another commit is refused, a bad
// signature is refused, and cancel stops the build.
func TestTypeScriptClientAgainstServe(t *testing.T) {
	node := nodeBin(t)
	dist := compileClient(t)
	bin := bootstrap(t)
	w := newWorld(t)
	server, base := w.serve(t, bin)

	const id = "cm9x2k7f30001tsclient"
	cmd := exec.Command(node, filepath.Join(dist, "test", "smoke.js"))
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"AF_DISPATCH_URL=" + base,
		"AF_DISPATCH_API_SECRET=" + apiSecret,
		"BUILD_ID=" + id,
		"INSTALLATION_ID=" + strconv.Itoa(installationID),
		"REPO_OWNER=" + owner,
		"REPO_NAME=" + repo,
		"COMMIT=" + commit,
		"IMAGE_TAG=ghcr.io/acme/web:" + commit[:12],
	}
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("node smoke.js: %v\n%s\n%s\ndispatch:\n%s", err, out, stderr, server.Logs())
	}
	var got struct {
		Created, Repeated map[string]any
		Conflict          struct {
			Status int
			Fields []string
		}
		BadSignature struct{ Status int }
		Canceled     map[string]any
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("smoke.js printed %q: %v", out, err)
	}
	name := kubernetes.JobName(id)
	if got.Created["k8sJobName"] != name || got.Created["executor"] != "kubernetes" || got.Created["dryRun"] != false ||
		!strings.Contains(got.Created["initialLog"].(string), id) {
		t.Errorf("created: %v", got.Created)
	}
	if got.Repeated["k8sJobName"] != name {
		t.Errorf("repeated: %v", got.Repeated)
	}
	if got.Conflict.Status != 409 || len(got.Conflict.Fields) != 1 || got.Conflict.Fields[0] != "buildJobId" {
		t.Errorf("same id, other commit: %+v, want 409 naming buildJobId", got.Conflict)
	}
	if got.BadSignature.Status != 401 {
		t.Errorf("bad signature: %+v, want 401", got.BadSignature)
	}
	if got.Canceled["state"] != "canceled" || got.Canceled["callback"] != "sent" {
		t.Errorf("canceled: %v", got.Canceled)
	}
	// One build was created, with the commands as sent, and then canceled.
	jobs, err := w.kube.Kube.BatchV1().Jobs(w.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil || len(jobs.Items) != 0 {
		t.Errorf("jobs left after cancel: %d, %v", len(jobs.Items), err)
	}
	if d, ok := w.sink.Terminal(id); !ok || d.Status != "CANCELED" {
		t.Errorf("terminal callback: %+v %v", d, ok)
	}
	if n := strings.Count(server.Logs(), `"msg":"build submitted"`); n != 2 {
		t.Errorf("%d submissions logged, want 2 (create and its repeat)", n)
	}
	if c := strings.Count(server.Logs(), `"created":true`); c != 1 {
		t.Errorf("%d builds created, want 1:\n%s", c, server.Logs())
	}
	if strings.Contains(server.Logs(), "not-the-secret") {
		t.Error("the wrong secret reached the log")
	}
}
