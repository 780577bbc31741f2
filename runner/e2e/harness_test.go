package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/alternatefutures/af-builder/internal/testinfra/callbacksink"
	"github.com/alternatefutures/af-builder/internal/testinfra/gitserver"
	"github.com/alternatefutures/af-builder/internal/testinfra/syncbuf"
	"github.com/alternatefutures/af-builder/shared/token"
)

// build is one invocation of the runner binary.
type build struct {
	ID   string
	Env  map[string]string
	Repo *gitserver.Repo
	// Tag is the image tag pushed to the test registry.
	Tag string
	// Token is the callback token minted for this build.
	Token string
	// Wait bounds the runner's run in the test; default 10 minutes.
	Wait time.Duration
}

// newBuild prepares the env contract for a build of repo at ref, the way
// dispatch would set it.
func newBuild(t *testing.T, repo *gitserver.Repo, ref string) *build {
	t.Helper()
	id := "e2e-" + strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())) + "-" + randHex(3)
	if len(id) > 100 {
		id = id[:100]
	}
	tok := token.Mint([]byte(callbackSecret), id, time.Now())
	tag := fmt.Sprintf("%s/e2e/%s--%s:%s", env.registry.Addr(), "user1", strings.ToLower(repo.Owner()+"-"+repo.Name()), shortRef(ref))
	return &build{
		ID: id, Repo: repo, Tag: tag, Token: tok,
		Env: map[string]string{
			"BUILD_JOB_ID":        id,
			"CALLBACK_URL":        env.sink.URL(),
			"CALLBACK_TOKEN":      tok,
			"REPO_CLONE_URL":      repo.CloneURL(gitToken),
			"REPO_REF":            ref,
			"IMAGE_TAG":           tag,
			"GHCR_USER":           "af-push",
			"GHCR_TOKEN":          registryPass,
			"REPO_SOURCE_URL":     repo.SourceURL(),
			"REPO_OWNER":          repo.Owner(),
			"REPO_NAME":           repo.Name(),
			"DOCKER_HOST":         env.daemon.Host(),
			"BUILD_NETWORK":       "host",
			"LOG_STREAM_INTERVAL": "1s",
		},
	}
}

func shortRef(ref string) string {
	if len(ref) >= 12 {
		return ref[:12]
	}
	return strings.ReplaceAll(ref, "/", "-")
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// result is what a finished runner left behind.
type result struct {
	ExitCode   int
	Stdout     string
	Stderr     string
	Deliveries []callbacksink.Delivery
	// Terminal is the first accepted terminal callback.
	Terminal map[string]any
	// Terminals counts the terminal callbacks the API accepted.
	Terminals int
}

// running is a runner process still going.
type running struct {
	cmd            *exec.Cmd
	stdout, stderr *syncbuf.Buffer
	b              *build
}

func (b *build) start(t *testing.T) *running {
	t.Helper()
	cmd := exec.Command(env.runnerBin)
	cmd.Env = []string{"PATH=" + env.binDir + ":" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"NIXPACKS_STANDIN_BASE=" + baseImage}
	for k, v := range b.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	r := &running{cmd: cmd, stdout: &syncbuf.Buffer{}, stderr: &syncbuf.Buffer{}, b: b}
	cmd.Stdout, cmd.Stderr = r.stdout, r.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start runner: %v", err)
	}
	return r
}

func (r *running) wait(t *testing.T) result {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	var err error
	limit := r.b.Wait
	if limit <= 0 {
		limit = 10 * time.Minute
	}
	select {
	case err = <-done:
	case <-time.After(limit):
		r.cmd.Process.Kill()
		t.Fatalf("runner did not exit within %s; stdout:\n%s", limit, r.stdout.String())
	}
	res := result{Stdout: r.stdout.String(), Stderr: r.stderr.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		res.ExitCode = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("runner: %v", err)
	}
	res.Deliveries = env.sink.Deliveries(r.b.ID)
	for _, d := range res.Deliveries {
		if d.Accepted() && callbacksink.IsTerminal(d.Status) {
			if res.Terminals == 0 {
				res.Terminal = d.Payload
			}
			res.Terminals++
		}
	}
	t.Logf("runner exited %d\n--- stdout ---\n%s--- stderr ---\n%s", res.ExitCode, res.Stdout, res.Stderr)
	if strings.Contains(res.Stderr, "WARNING: DATA RACE") {
		t.Errorf("the runner has a data race (see stderr above)")
	}
	assertNoSecrets(t, res)
	return res
}

// run executes b to completion.
func (b *build) run(t *testing.T) result {
	t.Helper()
	return b.start(t).wait(t)
}

// newRepo makes a repository on the git server with one commit per file set,
// in order, on main, and returns it with the commit SHAs.
func newRepo(t *testing.T, commits ...map[string]gitserver.File) (*gitserver.Repo, []string) {
	t.Helper()
	repo, err := env.git.CreateRepo("acme/" + strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())) + "-" + randHex(2))
	if err != nil {
		t.Fatal(err)
	}
	var shas []string
	for i, files := range commits {
		sha, err := repo.Commit("main", files, fmt.Sprintf("commit %d", i+1))
		if err != nil {
			t.Fatal(err)
		}
		shas = append(shas, sha)
	}
	return repo, shas
}

// expectFailure checks the build failed in phase with class and a message
// containing want, with exactly one terminal callback.
func expectFailure(t *testing.T, res result, phase, class, want string) {
	t.Helper()
	if res.ExitCode == 0 {
		t.Fatalf("runner exited 0 for a failing build")
	}
	if res.Terminals != 1 {
		t.Fatalf("%d terminal callbacks accepted, want exactly 1", res.Terminals)
	}
	p := res.Terminal
	if p["status"] != "FAILED" || p["failedPhase"] != phase || p["errorClass"] != class {
		t.Fatalf("terminal = status %v phase %v class %v, want FAILED %s %s (message %q)",
			p["status"], p["failedPhase"], p["errorClass"], phase, class, p["errorMessage"])
	}
	if msg, _ := p["errorMessage"].(string); !strings.Contains(msg, want) {
		t.Fatalf("errorMessage %q does not contain %q", msg, want)
	}
}

// dockerClient talks to the test engine.
func dockerClient(t *testing.T) *client.Client {
	t.Helper()
	c, err := env.daemon.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// imageExists reports whether the engine has ref locally.
func imageExists(t *testing.T, ref string) bool {
	t.Helper()
	_, err := dockerClient(t).ImageInspect(context.Background(), ref)
	return err == nil
}
