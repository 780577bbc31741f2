package e2e

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	gs "github.com/alternatefutures/af-builder/internal/testinfra/gitserver"
)

// appFiles is a small service in apps/api of a monorepo: a multi-stage
// Dockerfile whose build stage uses a BuildKit cache mount (the classic
// builder rejects that syntax) and whose image prints what it was built from.
func appFiles(version string) map[string]gs.File {
	return map[string]gs.File{
		"README.md":           gs.Text("monorepo\n"),
		"apps/web/index.html": gs.Text("<h1>web</h1>\n"),
		"apps/api/VERSION":    gs.Text(version + "\n"),
		"apps/api/hello.sh":   gs.Text("echo \"hello from $(cat /app/artifact)\"\n"),
		"apps/api/Dockerfile": gs.Text(`FROM ` + baseImage + ` AS build
WORKDIR /src
COPY VERSION .
RUN --mount=type=cache,target=/cache echo "compiled-$(cat VERSION)" > /cache/out && cp /cache/out /src/artifact
FROM ` + baseImage + `
COPY --from=build /src/artifact /app/artifact
COPY hello.sh /app/hello.sh
EXPOSE 8080
CMD ["/bin/sh", "/app/hello.sh"]
`),
	}
}

func TestPinnedCommitInRootDirectoryBecomesARunnableImageInTheRegistry(t *testing.T) {
	repo, shas := newRepo(t, appFiles("v1"), appFiles("v2"))
	pinned := shas[0] // not the branch tip
	b := newBuild(t, repo, pinned)
	b.Env["ROOT_DIRECTORY"] = "apps/api"

	res := b.run(t)

	if res.ExitCode != 0 || res.Terminals != 1 || res.Terminal["status"] != "SUCCEEDED" {
		t.Fatalf("exit %d, %d terminal callbacks, terminal %v", res.ExitCode, res.Terminals, res.Terminal)
	}
	p := res.Terminal
	if p["commitSha"] != pinned {
		t.Errorf("commitSha = %v, want the pinned %s", p["commitSha"], pinned)
	}
	if p["imageTag"] != b.Tag {
		t.Errorf("imageTag = %v, want %s", p["imageTag"], b.Tag)
	}
	if p["detectedFramework"] != "dockerfile" {
		t.Errorf("detectedFramework = %v, want dockerfile", p["detectedFramework"])
	}
	if port, ok := p["detectedPort"].(float64); !ok || port != 8080 {
		t.Errorf("detectedPort = %v, want 8080 from EXPOSE", p["detectedPort"])
	}
	timings, _ := p["phaseTimingsMs"].(map[string]any)
	for _, phase := range []string{"clone", "detect", "plan", "build", "push"} {
		if _, ok := timings[phase]; !ok {
			t.Errorf("no timing for phase %s in %v", phase, timings)
		}
	}

	repoName, tag := repoAndTag(b.Tag)
	ctx := context.Background()
	digest, err := env.registry.ManifestDigest(ctx, repoName, tag)
	if err != nil {
		t.Fatal(err)
	}
	if p["imageDigest"] != digest {
		t.Errorf("imageDigest = %v, registry has %s", p["imageDigest"], digest)
	}
	cfg, err := env.registry.ImageConfig(ctx, repoName, tag)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Labels["org.opencontainers.image.revision"]; got != pinned {
		t.Errorf("revision label = %q, want %s", got, pinned)
	}
	if got := cfg.Labels["org.opencontainers.image.source"]; got != repo.SourceURL() {
		t.Errorf("source label = %q, want %s", got, repo.SourceURL())
	}
	if created, err := time.Parse(time.RFC3339, cfg.Labels["org.opencontainers.image.created"]); err != nil || time.Since(created) > time.Hour {
		t.Errorf("created label = %q", cfg.Labels["org.opencontainers.image.created"])
	}
	assertNoSecretsIn(t, "image config", string(cfg.Raw))

	if out := runFromRegistry(t, b.Tag); out != "hello from compiled-v1" {
		t.Errorf("image prints %q, want the pinned commit's output %q", out, "hello from compiled-v1")
	}

	// Live logs: RUNNING updates came before the terminal one, with a tail
	// that grew and carried phase-prefixed lines.
	var running int
	for _, d := range res.Deliveries {
		if d.Status == "RUNNING" {
			running++
		}
		if d.Final && d.Status != "SUCCEEDED" {
			t.Errorf("final delivery is %s", d.Status)
		}
	}
	if running < 1 {
		t.Errorf("no RUNNING callback")
	}
	if last := res.Deliveries[len(res.Deliveries)-1]; last.Status != "SUCCEEDED" {
		t.Errorf("last callback is %s: a RUNNING update arrived after the terminal one", last.Status)
	}
	logs, _ := p["logs"].(string)
	for _, want := range []string{"clone: checked out commit " + pinned, "build: ", "push: pushed "} {
		if !strings.Contains(logs, want) {
			t.Errorf("log tail lacks %q", want)
		}
	}
}

func TestNixpacksPlanReceivesOverridesAndBuildsTheApp(t *testing.T) {
	repo, shas := newRepo(t, map[string]gs.File{
		"main.sh": gs.Text("echo app\n"),
	})
	b := newBuild(t, repo, "main")
	log := filepath.Join(t.TempDir(), "nixpacks.log")
	b.Env["NIXPACKS_STANDIN_LOG"] = log
	b.Env["BUILD_COMMAND_B64"] = base64.StdEncoding.EncodeToString([]byte("echo \"built by override\" > /app/built.txt\n"))
	b.Env["START_COMMAND"] = "cat /app/built.txt && sh main.sh"

	res := b.run(t)

	if res.ExitCode != 0 || res.Terminal["status"] != "SUCCEEDED" {
		t.Fatalf("exit %d, terminal %v", res.ExitCode, res.Terminal)
	}
	if res.Terminal["commitSha"] != shas[0] {
		t.Errorf("commitSha = %v, want the tip of main %s", res.Terminal["commitSha"], shas[0])
	}
	calls, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"build"`, `"--out"`, `"--build-cmd","echo \"built by override\" \u003e /app/built.txt"`, `"--start-cmd","cat /app/built.txt \u0026\u0026 sh main.sh"`, `"--cache-key"`} {
		if !strings.Contains(string(calls), want) {
			t.Errorf("nixpacks was not called with %s; calls:\n%s", want, calls)
		}
	}
	// --env values are baked into the image: the port, and nothing else.
	if n, port := strings.Count(string(calls), `"--env"`), strings.Count(string(calls), `"--env","PORT=8080"`); n != port || port == 0 {
		t.Errorf("nixpacks got %d --env flags, %d of them PORT=8080; want only PORT=8080", n, port)
	}
	assertNoSecretsIn(t, "nixpacks arguments and environment", string(calls))
	repoName, tag := repoAndTag(b.Tag)
	cfg, err := env.registry.ImageConfig(context.Background(), repoName, tag)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(cfg.Env, "PORT=8080") {
		t.Errorf("image env %q lacks PORT=8080, the port reported to the platform", cfg.Env)
	}
	if port, _ := res.Terminal["detectedPort"].(float64); port != 8080 {
		t.Errorf("detectedPort = %v, want 8080", res.Terminal["detectedPort"])
	}
	assertNoSecretsIn(t, "image config", string(cfg.Raw))
	if out := runFromRegistry(t, b.Tag); out != "built by override\napp" {
		t.Errorf("image prints %q", out)
	}
}

func TestFailingRunStepIsReportedAsABuildFailureWithTheFailingLine(t *testing.T) {
	repo, shas := newRepo(t, map[string]gs.File{
		"Dockerfile": gs.Text("FROM " + baseImage + "\nRUN echo about-to-fail-now && exit 3\n"),
	})
	b := newBuild(t, repo, shas[0])
	reported := filepath.Join(t.TempDir(), "reported")
	b.Env["REPORTED_FILE"] = reported
	res := b.run(t)

	expectFailure(t, res, "build", "user", "exit code: 3")
	if _, err := os.Stat(reported); err == nil {
		t.Error("REPORTED_FILE was created for a failed build: only SUCCEEDED leaves work after the report")
	}
	if logs, _ := res.Terminal["logs"].(string); !strings.Contains(logs, "about-to-fail-now") {
		t.Errorf("log tail lacks the failing step's output:\n%s", logs)
	}
}

func TestWrongGitTokenFailsTheClonePhase(t *testing.T) {
	repo, shas := newRepo(t, appFiles("v1"))
	b := newBuild(t, repo, shas[0])
	b.Env["REPO_CLONE_URL"] = repo.CloneURL("ghs_notTheRightToken000000000000000000")

	res := b.run(t)

	expectFailure(t, res, "clone", "user", "GitHub App is installed")
	if strings.Contains(res.Stdout+res.Stderr, "ghs_notTheRightToken") {
		t.Errorf("the wrong token was printed")
	}
}

func TestUnknownCommitFailsTheClonePhase(t *testing.T) {
	repo, _ := newRepo(t, appFiles("v1"))
	res := newBuild(t, repo, strings.Repeat("ab", 20)).run(t)
	expectFailure(t, res, "clone", "user", "was not found")
}

func TestRegistryAuthFailureFailsThePushPhase(t *testing.T) {
	repo, shas := newRepo(t, map[string]gs.File{
		"Dockerfile": gs.Text("FROM " + baseImage + "\nRUN echo " + randHex(8) + " > /stamp\n"),
	})
	b := newBuild(t, repo, shas[0])
	b.Env["GHCR_TOKEN"] = "wrong-registry-password"

	res := b.run(t)

	expectFailure(t, res, "push", "infrastructure", "registry rejected the push credentials")
	if strings.Contains(res.Stdout+res.Stderr+string(mustJSON(res.Terminal)), "wrong-registry-password") {
		t.Errorf("the registry password was printed")
	}
}

func TestRootDirectoryOutsideTheRepositoryIsRejectedBeforeAnythingRuns(t *testing.T) {
	repo, shas := newRepo(t, appFiles("v1"))
	before := env.git.Fetches(repo.FullName())
	b := newBuild(t, repo, shas[0])
	b.Env["ROOT_DIRECTORY"] = "../x"

	res := b.run(t)

	expectFailure(t, res, "config", "user", "ROOT_DIRECTORY")
	if res.ExitCode != 2 {
		t.Errorf("exit code %d, want 2 for bad configuration", res.ExitCode)
	}
	if n := env.git.Fetches(repo.FullName()); n != before {
		t.Errorf("the repository was fetched %d times for a rejected build", n-before)
	}
	if imageExists(t, b.Tag) {
		t.Errorf("an image was built")
	}
}

func TestSymlinkedRootDirectoryLeadingOutOfTheRepositoryIsRejected(t *testing.T) {
	files := appFiles("v1")
	files["escape"] = gs.Symlink("/etc")
	files["nested/up"] = gs.Symlink("../..")
	repo, shas := newRepo(t, files)
	for _, root := range []string{"escape", "nested/up"} {
		t.Run(root, func(t *testing.T) {
			b := newBuild(t, repo, shas[0])
			b.Env["ROOT_DIRECTORY"] = root
			res := b.run(t)
			expectFailure(t, res, "clone", "user", "outside the repository")
			// Only seen after checkout: a build failure, not bad configuration.
			if res.ExitCode != 1 {
				t.Errorf("exit code %d, want 1 (a symlink is only seen after checkout)", res.ExitCode)
			}
			if imageExists(t, b.Tag) {
				t.Errorf("an image was built")
			}
		})
	}
}

func TestSIGTERMDuringABuildReportsOnceAndStopsTheBuildOnTheEngine(t *testing.T) {
	marker := strconv.Itoa(40000 + int(time.Now().UnixNano()%10000))
	repo, shas := newRepo(t, map[string]gs.File{
		"Dockerfile": gs.Text("FROM " + baseImage + "\nRUN echo sleeping-now && sleep " + marker + "\n"),
	})
	b := newBuild(t, repo, shas[0])
	r := b.start(t)

	deadline := time.Now().Add(3 * time.Minute)
	for !sleepRunning(marker) {
		if time.Now().After(deadline) {
			r.cmd.Process.Kill()
			t.Fatalf("the long RUN step never started; stdout:\n%s", r.stdout.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	stopped := time.Now()
	r.cmd.Process.Signal(syscall.SIGTERM)
	res := r.wait(t)
	took := time.Since(stopped)

	expectFailure(t, res, "build", "infrastructure", "SIGTERM")
	if took > 25*time.Second {
		t.Errorf("runner took %s after SIGTERM; the pod's grace period is shorter", took)
	}
	deadline = time.Now().Add(10 * time.Second)
	for sleepRunning(marker) {
		if time.Now().After(deadline) {
			t.Fatalf("the RUN step's process is still running on the engine 10s after the runner exited")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sleepRunning reports whether a process running "sleep <marker>" exists on
// this machine, where the test engine runs its build steps.
func sleepRunning(marker string) bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), "sleep\x00"+marker) {
			return true
		}
	}
	return false
}

func TestBuildTimeoutEndsInOneFailedCallbackAndStopsTheBuild(t *testing.T) {
	marker := strconv.Itoa(50000 + int(time.Now().UnixNano()%10000))
	repo, shas := newRepo(t, map[string]gs.File{
		"Dockerfile": gs.Text("FROM " + baseImage + "\nRUN sleep " + marker + "\n"),
	})
	b := newBuild(t, repo, shas[0])
	b.Env["BUILD_TIMEOUT"] = "10s"

	res := b.run(t)

	expectFailure(t, res, "build", "user", "did not finish within BUILD_TIMEOUT (10s)")
	deadline := time.Now().Add(10 * time.Second)
	for sleepRunning(marker) {
		if time.Now().After(deadline) {
			t.Fatalf("the RUN step's process outlived the timeout")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
