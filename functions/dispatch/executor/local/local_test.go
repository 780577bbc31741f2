package local

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alternatefutures/af-builder/functions/dispatch/executor"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor/executortest"
	"github.com/alternatefutures/af-builder/internal/testinfra/callbacksink"
	"github.com/alternatefutures/af-builder/shared/contract"
	"github.com/alternatefutures/af-builder/shared/token"
)

const callbackSecret = "local-executor-test-secret-0123456789"

var runnerBin string

// The suite runs the real runner binary. Its DOCKER_HOST names a port nobody
// listens on, so each build stays in its engine phase (waiting for the
// engine, up to two minutes) until it is cancelled: a real runner in a real
// state, without needing a Docker engine.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "local-exec-")
	if err != nil {
		panic(err)
	}
	runnerBin = filepath.Join(dir, "runner")
	cmd := exec.Command("go", "build", "-o", runnerBin, "github.com/alternatefutures/af-builder/runner")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "build runner: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type fixture struct {
	exec *Executor
	sink *callbacksink.Sink
	dead string // DOCKER_HOST where nothing answers
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	sink, err := callbacksink.Start(context.Background(), callbacksink.Options{Secret: []byte(callbackSecret)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Stop() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "tcp://" + ln.Addr().String()
	ln.Close()
	e, err := New(Config{RunnerBin: runnerBin, DockerHost: dead, LogDir: t.TempDir(), GracePeriod: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{exec: e, sink: sink}
}

func (f *fixture) build(t *testing.T, id, serviceID, branch string) executor.Build {
	env := contract.Env{
		BuildJobID:     id,
		CallbackURL:    f.sink.URL(),
		CallbackToken:  token.Mint([]byte(callbackSecret), id, time.Now()),
		RepoCloneURL:   "http://x-access-token:ghs_localExecutorTestToken@127.0.0.1:1/acme/app.git",
		RepoRef:        "main",
		ImageTag:       "127.0.0.1:5000/acme/app:" + id,
		RegistryUser:   "push",
		RegistryToken:  "registry-secret-for-local-test",
		RunnerDefaults: contract.RunnerDefaults{LogStreamInterval: time.Second, BuildTimeout: 10 * time.Minute},
	}
	if err := env.Normalize(); err != nil {
		t.Fatal(err)
	}
	return executor.Build{Env: env, ServiceID: serviceID, Branch: branch, Trigger: "push"}
}

func TestLocalExecutorBehavesLikeEveryExecutor(t *testing.T) {
	executortest.Run(t, func(t *testing.T) executortest.Harness {
		f := newFixture(t)
		return executortest.Harness{Executor: f.exec, NewBuild: f.build}
	})
}

func TestRunnerGetsTheContractAndNothingOfDispatchsEnvironment(t *testing.T) {
	t.Setenv("GITHUB_APP_PRIVATE_KEY", "dispatch-own-secret-never-for-runners")
	f := newFixture(t)
	b := f.build(t, "env-1", "svc", "main")
	if _, err := f.exec.Submit(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	defer f.exec.Cancel(context.Background(), "env-1")

	f.exec.mu.Lock()
	pid := f.exec.builds["env-1"].cmd.Process.Pid
	f.exec.mu.Unlock()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, kv := range strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00") {
		names = append(names, kv[:strings.IndexByte(kv, '=')])
		if strings.Contains(kv, "dispatch-own-secret") {
			t.Errorf("the runner got dispatch's own secret")
		}
	}
	// DOCKER_HOST comes from the executor's configuration when the build
	// names none; REPORTED_FILE is the executor's, one per build.
	want := []string{"PATH", "HOME", "TMPDIR", "DOCKER_HOST", "REPORTED_FILE"}
	for _, v := range b.Env.Vars() {
		want = append(want, v.Name)
	}
	slices.Sort(names)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("runner environment = %v\nwant exactly %v", names, want)
	}
}

func TestCancelGivesTheRunnerItsGracePeriodToReport(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.exec.Submit(ctx, f.build(t, "grace-1", "svc", "main")); err != nil {
		t.Fatal(err)
	}
	// Cancel once the runner is up and talking.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := f.sink.WaitFor(wctx, func(ds []callbacksink.Delivery) bool { return len(ds) > 0 }); err != nil {
		t.Fatal(err)
	}
	if err := f.exec.Cancel(ctx, "grace-1"); err != nil {
		t.Fatal(err)
	}
	term, err := f.sink.WaitTerminal(wctx, "grace-1")
	if err != nil {
		t.Fatalf("no terminal callback after Cancel: %v", err)
	}
	if term.Status != "FAILED" || !strings.Contains(fmt.Sprint(term.Payload["errorMessage"]), "SIGTERM") {
		t.Errorf("terminal = %s %v", term.Status, term.Payload["errorMessage"])
	}
}

func TestSubmitRefusesBuildIDsThatLeaveTheLogDir(t *testing.T) {
	f := newFixture(t)
	outside := t.TempDir()
	for _, id := range []string{"a/../../" + filepath.Base(outside) + "/escaped", "../escaped", "a b", ""} {
		b := f.build(t, "valid-1", "svc", "main")
		b.Env.BuildJobID = id
		if _, err := f.exec.Submit(context.Background(), b); err == nil {
			_ = f.exec.Cancel(context.Background(), id)
			t.Errorf("Submit(%q) started a runner", id)
		}
	}
	if matches, _ := filepath.Glob(filepath.Join(outside, "*")); len(matches) > 0 {
		t.Errorf("files written outside the log dir: %v", matches)
	}
	if _, err := os.Stat(filepath.Join(f.exec.cfg.LogDir, "..", "escaped.log")); err == nil {
		t.Error("a build log was written next to the log dir")
	}
}

func TestCloseStopsEveryRunnerAndLetsItReport(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, id := range []string{"close-1", "close-2"} {
		if _, err := f.exec.Submit(ctx, f.build(t, id, "svc", "main")); err != nil {
			t.Fatal(err)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// Close once both runners are up and talking.
	if err := f.sink.WaitFor(wctx, func(ds []callbacksink.Delivery) bool { return len(ds) >= 2 }); err != nil {
		t.Fatal(err)
	}
	f.exec.Close()
	for _, id := range []string{"close-1", "close-2"} {
		if st, _ := f.exec.Status(ctx, id); st != executor.StateFailed {
			t.Errorf("%s: status after Close = %s, want failed (stopped)", id, st)
		}
		if term, ok := f.sink.Terminal(id); !ok || term.Status != "FAILED" {
			t.Errorf("%s: no FAILED terminal callback when Close returned", id)
		}
	}
}

func TestReapReportsARunnerKilledWithoutWarningOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, id := range []string{"oom-1", "term-1"} {
		if _, err := f.exec.Submit(ctx, f.build(t, id, "svc", "main")); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.exec.Cancel(ctx, id) })
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := f.sink.WaitFor(wctx, func(ds []callbacksink.Delivery) bool { return len(ds) >= 2 }); err != nil {
		t.Fatal(err)
	}
	pgid := func(id string) int {
		f.exec.mu.Lock()
		defer f.exec.mu.Unlock()
		return f.exec.builds[id].cmd.Process.Pid
	}
	// What the kernel's OOM killer does: SIGKILL, no chance to report.
	if err := syscall.Kill(-pgid("oom-1"), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// A SIGTERM the runner survives long enough to report FAILED.
	if err := syscall.Kill(-pgid("term-1"), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"oom-1", "term-1"} {
		if _, err := f.exec.Wait(wctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := f.sink.Terminal("oom-1"); ok {
		t.Fatal("the killed runner reported; the test kills it too late")
	}

	lost, err := f.exec.Reap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(lost) != 1 || lost[0].BuildJobID != "oom-1" {
		t.Fatalf("Reap = %+v, want only oom-1 (term-1 reported itself)", lost)
	}
	if !strings.Contains(lost[0].Reason, "SIGKILL") || lost[0].CallbackURL != f.sink.URL() {
		t.Errorf("Lost = %+v, want a SIGKILL reason and the runner's CALLBACK_URL %s", lost[0], f.sink.URL())
	}
	if again, err := f.exec.Reap(ctx); err != nil || len(again) != 0 {
		t.Errorf("second Reap = %+v, %v; want nothing", again, err)
	}
}

// A runner that delivered SUCCEEDED and is exporting its cache is over for
// the platform: neither superseded nor canceled, which would report twice.
func TestARunnerThatReportedIsNoLongerActive(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	old, newer := f.build(t, "reported-old", "svc", "main"), f.build(t, "reported-new", "svc", "main")
	for _, b := range []executor.Build{old, newer} {
		if _, err := f.exec.Submit(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(f.exec.Close)
	if ids, _ := f.exec.Active(ctx, "svc", "main"); len(ids) != 2 {
		t.Fatalf("Active = %v, want both builds", ids)
	}

	// What the runner does once SUCCEEDED is delivered (runner/main.go).
	f.exec.mu.Lock()
	marker := f.exec.builds["reported-old"].reportedFile
	f.exec.mu.Unlock()
	if err := os.WriteFile(marker, []byte(contract.ReportedMark+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.exec.Status(ctx, "reported-old"); st != executor.StateSucceeded {
		t.Errorf("Status = %s, want succeeded", st)
	}
	if ids, _ := f.exec.Active(ctx, "svc", "main"); !slices.Equal(ids, []string{"reported-new"}) {
		t.Errorf("Active = %v, want only the build that has not reported", ids)
	}
	if stale, _ := f.exec.Superseded(ctx); len(stale) != 0 {
		t.Errorf("Superseded = %+v, want nothing: the reported build is over", stale)
	}
}
