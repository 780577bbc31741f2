package plan

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alternatefutures/af-builder/runner/failure"
)

// standin is the stand-in nixpacks CLI, built once for the package's tests.
var standin string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "af-plan-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		standin = filepath.Join(dir, "nixpacks")
		out, err := exec.Command("go", "build", "-o", standin,
			"github.com/alternatefutures/af-builder/internal/testinfra/nixpacksstandin").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build the nixpacks stand-in: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}())
}

// invocation is one run of the stand-in, as it records them.
type invocation struct {
	Args []string `json:"args"`
	Env  []string `json:"env"`
}

// recordInvocations makes the stand-in log its runs and returns a reader
// for them.
func recordInvocations(t *testing.T) func() []invocation {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nixpacks.log")
	t.Setenv("NIXPACKS_STANDIN_LOG", path)
	t.Setenv("NIXPACKS_STANDIN_BASE", "af-test-base:latest")
	return func() []invocation {
		t.Helper()
		f, err := os.Open(path)
		if err != nil {
			t.Fatalf("the stand-in recorded nothing: %v", err)
		}
		defer f.Close()
		var out []invocation
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var inv invocation
			if err := json.Unmarshal(sc.Bytes(), &inv); err != nil {
				t.Fatalf("log line %q: %v", sc.Text(), err)
			}
			out = append(out, inv)
		}
		return out
	}
}

func app(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		write(t, filepath.Join(dir, name), content)
	}
	return dir
}

func nixpacksPlan(t *testing.T, n Nixpacks, src Source) (Plan, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var log bytes.Buffer
	p, err := n.Plan(ctx, src, &log)
	return p, log.String(), err
}

func build(t *testing.T, invs []invocation) invocation {
	t.Helper()
	for _, inv := range invs {
		if len(inv.Args) > 0 && inv.Args[0] == "build" {
			return inv
		}
	}
	t.Fatalf("nixpacks build was not run: %+v", invs)
	return invocation{}
}

func TestNixpacksPassesOverridesAndCacheKey(t *testing.T) {
	invocations := recordInvocations(t)
	dir := app(t, map[string]string{"package.json": `{"name":"web"}`})
	p, log, err := nixpacksPlan(t, Nixpacks{Bin: standin}, Source{
		Dir:          dir,
		BuildCommand: "npm run build",
		StartCommand: "node server.js --port $PORT",
		CacheKey:     "af-u--octo-app-web",
	})
	if err != nil {
		t.Fatalf("Plan: %v\nlog:\n%s", err, log)
	}

	got := build(t, invocations()).Args
	want := []string{"build", dir, "--out", dir, "--env", "PORT=8080",
		"--cache-key", "af-u--octo-app-web",
		"--build-cmd", "npm run build",
		"--start-cmd", "node server.js --port $PORT"}
	if !slices.Equal(got, want) {
		t.Errorf("nixpacks args =\n%q\nwant\n%q", got, want)
	}
	if p.Kind != "nixpacks" || p.ContextDir != dir || p.DockerfileDir != filepath.Join(dir, ".nixpacks") || p.DockerfileName != "Dockerfile" {
		t.Errorf("plan = %+v", p)
	}
	df, err := os.ReadFile(filepath.Join(dir, ".nixpacks", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(df), "id=af-u--octo-app-web-build") {
		t.Errorf("the generated Dockerfile does not use the cache key:\n%s", df)
	}
	if !strings.Contains(log, "generating a Dockerfile with nixpacks build "+dir) || !strings.Contains(log, "Nixpacks (stand-in)") {
		t.Errorf("log does not show the command and nixpacks' own output:\n%s", log)
	}
}

func TestNixpacksWithoutOverridesPassesNoCommandFlags(t *testing.T) {
	invocations := recordInvocations(t)
	dir := app(t, map[string]string{"start.sh": "exec ./server\n"})
	p, log, err := nixpacksPlan(t, Nixpacks{Bin: standin}, Source{Dir: dir})
	if err != nil {
		t.Fatalf("Plan: %v\nlog:\n%s", err, log)
	}
	invs := invocations()
	if got, want := build(t, invs).Args, []string{"build", dir, "--out", dir, "--env", "PORT=8080"}; !slices.Equal(got, want) {
		t.Errorf("nixpacks args = %q, want %q", got, want)
	}
	// --env values are baked into the image: only the port may go that way.
	for _, inv := range invs {
		for i, a := range inv.Args {
			if strings.HasPrefix(a, "--env=") || a == "--env" && (i+1 == len(inv.Args) || inv.Args[i+1] != "PORT=8080") {
				t.Errorf("nixpacks %s was given an --env other than PORT=8080: %q", inv.Args[0], inv.Args)
			}
		}
	}
	// The plan subcommand ran first and refined detection with its start command.
	if invs[0].Args[0] != "plan" || p.Detected.StartCommand != "sh start.sh" {
		t.Errorf("first run %q, detected start %q; want nixpacks plan's start command used", invs[0].Args, p.Detected.StartCommand)
	}
}

func TestNixpacksFromPATH(t *testing.T) {
	invocations := recordInvocations(t)
	t.Setenv("PATH", filepath.Dir(standin))
	dir := app(t, map[string]string{"start.sh": "exec ./server\n"})
	if _, log, err := nixpacksPlan(t, Nixpacks{}, Source{Dir: dir}); err != nil {
		t.Fatalf("Plan: %v\nlog:\n%s", err, log)
	}
	if n := len(invocations()); n != 2 {
		t.Errorf("%d runs of nixpacks from PATH, want plan and build", n)
	}
}

func TestNixpacksSeesNoneOfTheRunnersSecrets(t *testing.T) {
	secrets := map[string]string{
		"CALLBACK_TOKEN": "cbtok.c2VjcmV0LWNhbGxiYWNr",
		"GHCR_TOKEN":     "ghp_RegistryPushToken0123456789",
		"REPO_CLONE_URL": "https://x-access-token:ghs_InstallToken0123456789@github.com/octo/app.git",
		"GHCR_USER":      "af-bot",
		"BUILD_JOB_ID":   "job-123",
	}
	for k, v := range secrets {
		t.Setenv(k, v)
	}
	invocations := recordInvocations(t)
	dir := app(t, map[string]string{"start.sh": "exec ./server\n"})
	if _, log, err := nixpacksPlan(t, Nixpacks{Bin: standin}, Source{Dir: dir}); err != nil {
		t.Fatalf("Plan: %v\nlog:\n%s", err, log)
	}
	invs := invocations()
	if len(invs) != 2 {
		t.Fatalf("%d invocations, want plan and build", len(invs))
	}
	for _, inv := range invs {
		env := map[string]string{}
		for _, kv := range inv.Env {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		for k, v := range secrets {
			if _, ok := env[k]; ok {
				t.Errorf("nixpacks %s got %s", inv.Args[0], k)
			}
			if strings.Contains(strings.Join(inv.Env, "\n"), v) {
				t.Errorf("nixpacks %s got the value of %s under another name", inv.Args[0], k)
			}
		}
		for k := range env {
			if k != "PATH" && k != "HOME" && k != "TMPDIR" && !strings.HasPrefix(k, "NIXPACKS_") {
				t.Errorf("nixpacks %s got %s, which it has no use for", inv.Args[0], k)
			}
		}
		if env["PATH"] != os.Getenv("PATH") || env["NIXPACKS_STANDIN_BASE"] == "" {
			t.Errorf("nixpacks %s lost PATH or its own NIXPACKS_ settings: %q", inv.Args[0], inv.Env)
		}
	}
}

func TestNixpacksThatCannotBuildIsTheUsersProblem(t *testing.T) {
	recordInvocations(t)
	// No start command anywhere: nixpacks gives up.
	dir := app(t, map[string]string{"README.md": "hello\n"})
	_, log, err := nixpacksPlan(t, Nixpacks{Bin: standin}, Source{Dir: dir})
	wantPlanError(t, err, failure.User, "add a Dockerfile or set a build and start command")
	if !strings.Contains(log, "No start command could be found") {
		t.Errorf("nixpacks' own reason is not in the log:\n%s", log)
	}
}

func TestNixpacksMissingIsAnInfrastructureFailure(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	dir := app(t, map[string]string{"start.sh": "exec ./server\n"})
	_, _, err := nixpacksPlan(t, Nixpacks{}, Source{Dir: dir})
	wantPlanError(t, err, failure.Infrastructure, "nixpacks is not installed")

	_, _, err = nixpacksPlan(t, Nixpacks{Bin: filepath.Join(t.TempDir(), "nixpacks")}, Source{Dir: dir})
	wantPlanError(t, err, failure.Infrastructure, "nixpacks is not installed")
}

func TestNixpacksThatHangsStopsAtTheDeadline(t *testing.T) {
	for name, build := range map[string]string{
		"itself": "exec sleep 60",
		// The shell is killed; the sleep it started keeps stdout open.
		"through a child": "sleep 60 & echo $! > \"$NIXPACKS_CHILD_PID\"; wait",
	} {
		t.Run(name, func(t *testing.T) {
			tmp := t.TempDir()
			bin := filepath.Join(tmp, "nixpacks")
			pidFile := filepath.Join(tmp, "child.pid")
			t.Setenv("NIXPACKS_CHILD_PID", pidFile)
			t.Cleanup(func() {
				if b, err := os.ReadFile(pidFile); err == nil {
					if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
						syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			})
			// plan answers at once; build never finishes.
			script := "#!/bin/sh\nif [ \"$1\" = plan ]; then echo '{}'; exit 0; fi\n" + build + "\n"
			if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			const limit = 500 * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), limit)
			defer cancel()
			start := time.Now()
			_, err := Nixpacks{Bin: bin}.Plan(ctx, Source{Dir: tmp}, &bytes.Buffer{})
			// Naming the deadline is the pipeline's job (it alone sees its
			// context's cause); the planner only has to stop in time.
			if err == nil {
				t.Fatal("Plan succeeded although nixpacks never finished")
			}
			if d := time.Since(start) - limit; d > 3*time.Second {
				t.Errorf("Plan returned %s after its deadline", d)
			}
		})
	}
}
