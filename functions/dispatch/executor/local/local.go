// Package local runs each build as a child process of dispatch, with exactly
// the env contract a Kubernetes Job would get, against a local Docker engine.
// It is the executor of the self-hosted single-machine setup and of `make demo`.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/alternatefutures/af-builder/functions/dispatch/executor"
	"github.com/alternatefutures/af-builder/shared/contract"
	"github.com/alternatefutures/af-builder/shared/validate"
)

// Config of the local executor.
type Config struct {
	// RunnerBin is the runner executable.
	RunnerBin string `env:"LOCAL_RUNNER_BIN, default=runner"`
	// DockerHost is the engine builds use when the contract names none.
	DockerHost string `env:"LOCAL_DOCKER_HOST"`
	// BuildNetwork is set when the contract names none (e.g. host on an
	// engine without a bridge network).
	BuildNetwork string `env:"LOCAL_BUILD_NETWORK"`
	// LogDir keeps each build's output as <id>.log; empty means the system temp dir.
	LogDir string `env:"LOCAL_LOG_DIR"`
	// GracePeriod is what a cancelled runner gets to send its terminal status,
	// like a pod's terminationGracePeriodSeconds.
	GracePeriod time.Duration `env:"LOCAL_GRACE_PERIOD, default=30s"`
	// ExtraEnv is passed to every runner (e.g. NIXPACKS_BIN); never secrets.
	ExtraEnv []string `env:"LOCAL_RUNNER_ENV"`
	// Output, when set, receives every runner's output as it happens.
	Output io.Writer
}

// LoadConfig reads Config through lookup (dispatch passes its X_FILE-aware
// lookup, as to every loader) and validates it.
func LoadConfig(ctx context.Context, lookup envconfig.Lookuper) (Config, error) {
	var c Config
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &c, Lookuper: lookup}); err != nil {
		return c, fmt.Errorf("local executor config: %w", err)
	}
	return c, c.Validate()
}

// Validate reports every problem at once, by variable name.
func (c Config) Validate() error {
	var errs []error
	switch c.BuildNetwork {
	case "", "default", "host", "none", "bridge":
	default:
		errs = append(errs, errors.New("LOCAL_BUILD_NETWORK must be one of default, host, none, bridge"))
	}
	if c.GracePeriod < contract.ShutdownReportBudget {
		errs = append(errs, fmt.Errorf("LOCAL_GRACE_PERIOD must be at least %s: a stopped runner takes up to that to report", contract.ShutdownReportBudget))
	}
	for _, kv := range c.ExtraEnv {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			errs = append(errs, errors.New("LOCAL_RUNNER_ENV entries must be KEY=VALUE"))
			break
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("local executor config: %w", errors.Join(errs...))
	}
	return nil
}

// Executor runs builds as processes. Finished builds are remembered until
// Cancel or the executor ends, so Status can answer for them.
type Executor struct {
	cfg    Config
	mu     sync.Mutex
	builds map[string]*proc
}

type proc struct {
	order     executor.Order // for Active's oldest-first answer
	cmd       *exec.Cmd
	serviceID string
	branch    string
	done      chan struct{}
	exitCode  int
	signal    syscall.Signal // what killed it, when one did
	logPath   string
	// reportedFile appears once the runner delivered SUCCEEDED
	// (REPORTED_FILE): from then on only its cache export is left.
	reportedFile string
	// callbackURL is where the runner reports, for the reaper's FAILED.
	callbackURL string
	reaped      bool
}

// New checks the runner executable exists.
func New(cfg Config) (*Executor, error) {
	bin, err := exec.LookPath(cfg.RunnerBin)
	if err != nil {
		return nil, fmt.Errorf("local executor: runner binary %q: %w", cfg.RunnerBin, err)
	}
	cfg.RunnerBin = bin
	if cfg.LogDir == "" {
		cfg.LogDir = filepath.Join(os.TempDir(), "af-builder-builds")
	}
	if err := os.MkdirAll(cfg.LogDir, 0o700); err != nil {
		return nil, fmt.Errorf("local executor: log dir: %w", err)
	}
	if cfg.GracePeriod <= 0 {
		cfg.GracePeriod = 30 * time.Second
	}
	return &Executor{cfg: cfg, builds: map[string]*proc{}}, nil
}

// Submit starts the runner unless a build with the same id exists.
func (e *Executor) Submit(_ context.Context, b executor.Build) (executor.Handle, error) {
	id := b.Env.BuildJobID
	// The id names the build's log file: refuse anything that could step
	// out of LogDir ("a/../../x"), as the Kubernetes executor refuses ids
	// that are not valid contract values.
	if err := validate.BuildJobID(id); err != nil {
		return executor.Handle{}, fmt.Errorf("local executor: build id %w", err)
	}
	h := executor.Handle{Name: "build-" + id}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.builds[id]; ok {
		return h, nil
	}
	env := b.Env
	if env.DockerHost == "" {
		env.DockerHost = e.cfg.DockerHost
	}
	if env.BuildNetwork == "" {
		env.BuildNetwork = e.cfg.BuildNetwork
	}
	logPath := filepath.Join(e.cfg.LogDir, id+".log")
	env.ReportedFile = filepath.Join(e.cfg.LogDir, id+".reported")
	_ = os.Remove(env.ReportedFile) // left by an earlier dispatch's build of this id
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return h, fmt.Errorf("local executor: build log: %w", err)
	}
	// Only what a Job's container would have: the contract and a minimal
	// environment, never dispatch's own secrets.
	cmd := exec.Command(e.cfg.RunnerBin)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}, e.cfg.ExtraEnv...)
	cmd.Env = append(cmd.Env, env.Environ()...)
	var out io.Writer = logFile
	if e.cfg.Output != nil {
		out = io.MultiWriter(logFile, e.cfg.Output)
	}
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so cancelling reaches whatever the runner started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return h, fmt.Errorf("local executor: start runner: %w", err)
	}
	p := &proc{order: executor.Order{Pushed: b.PushedAt, Submitted: time.Now(), Name: id}, cmd: cmd, serviceID: b.ServiceID, branch: b.Branch, done: make(chan struct{}), logPath: logPath, reportedFile: env.ReportedFile, callbackURL: env.CallbackURL}
	e.builds[id] = p
	go func() {
		err := cmd.Wait()
		logFile.Close()
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			p.exitCode = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				p.exitCode, p.signal = -1, ws.Signal()
			}
		default:
			p.exitCode = -1
		}
		close(p.done)
	}()
	h.Created = true
	return h, nil
}

// Cancel sends SIGTERM and forgets the build (as deleting a Job does); the
// runner gets its grace period to report, then is killed. Like a Job's
// deletion, it returns at once: a webhook answer must not wait for it.
func (e *Executor) Cancel(_ context.Context, buildJobID string) error {
	e.mu.Lock()
	p, ok := e.builds[buildJobID]
	delete(e.builds, buildJobID)
	e.mu.Unlock()
	if !ok {
		return executor.ErrNotFound
	}
	go e.stop(p)
	return nil
}

// stop ends one runner: SIGTERM to its process group, SIGKILL after the
// grace period.
func (e *Executor) stop(p *proc) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	t := time.NewTimer(e.cfg.GracePeriod)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// Close stops every runner still going, each with its grace period to
// report, so none outlives the dispatch that started it.
func (e *Executor) Close() {
	e.mu.Lock()
	procs := make([]*proc, 0, len(e.builds))
	for _, p := range e.builds {
		procs = append(procs, p)
	}
	e.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() { e.stop(p) })
	}
	wg.Wait()
}

// Status maps the process state.
func (e *Executor) Status(_ context.Context, buildJobID string) (executor.State, error) {
	e.mu.Lock()
	p, ok := e.builds[buildJobID]
	e.mu.Unlock()
	if !ok {
		return executor.StateNotFound, nil
	}
	select {
	case <-p.done:
		if p.exitCode == 0 {
			return executor.StateSucceeded, nil
		}
		return executor.StateFailed, nil
	default:
		if p.reported() {
			return executor.StateSucceeded, nil
		}
		return executor.StateRunning, nil
	}
}

// open reports whether the build is still going for the platform: its
// runner neither exited nor delivered SUCCEEDED (after which only the cache
// export is left, and superseding it would report a second time).
func (p *proc) open() bool {
	select {
	case <-p.done:
		return false
	default:
		return !p.reported()
	}
}

func (p *proc) reported() bool {
	mark, err := os.ReadFile(p.reportedFile)
	return err == nil && strings.Contains(string(mark), contract.ReportedMark)
}

// Active lists unfinished builds of one service and branch.
func (e *Executor) Active(_ context.Context, serviceID, branch string) ([]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ids []string
	for id, p := range e.builds {
		if p.serviceID == serviceID && p.branch == branch && p.open() {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b string) int {
		if executor.Older(e.builds[a].order, e.builds[b].order) {
			return -1
		}
		return 1
	})
	return ids, nil
}

// Superseded lists the unfinished builds a newer one of the same service
// and branch supersedes.
func (e *Executor) Superseded(context.Context) ([]executor.Stale, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var open []executor.Unfinished
	for id, p := range e.builds {
		if !p.open() {
			continue
		}
		open = append(open, executor.Unfinished{BuildJobID: id, ServiceID: p.serviceID, Branch: p.branch, CallbackURL: p.callbackURL, Order: p.order})
	}
	return executor.SupersededAmong(open), nil
}

// Reap returns, once each, the finished builds whose runner cannot have
// reported: killed by a signal (the kernel's OOM killer sends SIGKILL), or
// exited with a code other than 0, 1 and 2 (runner/main.go: 3 is "terminal
// status not delivered"). Cancelled builds are forgotten at Cancel, which
// reported CANCELED for them.
func (e *Executor) Reap(context.Context) ([]executor.Lost, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var lost []executor.Lost
	for id, p := range e.builds {
		select {
		case <-p.done:
		default:
			continue
		}
		if p.reaped {
			continue
		}
		p.reaped = true
		if reason := lostReason(p); reason != "" {
			lost = append(lost, executor.Lost{BuildJobID: id, Reason: reason, CallbackURL: p.callbackURL})
		}
	}
	slices.SortFunc(lost, func(a, b executor.Lost) int { return strings.Compare(a.BuildJobID, b.BuildJobID) })
	return lost, nil
}

// lostReason is empty when the runner reported itself.
func lostReason(p *proc) string {
	switch {
	case p.signal == syscall.SIGKILL:
		return "the build process was killed (SIGKILL): out of memory, or stopped from outside"
	case p.signal != 0:
		return fmt.Sprintf("the build process was killed by %s", p.signal)
	case contract.RunnerReported(p.exitCode):
		return ""
	case p.exitCode == contract.ExitReportFailed:
		return "the runner could not deliver its terminal status (exit 3)"
	default:
		return fmt.Sprintf("the runner ended with exit %d without reporting", p.exitCode)
	}
}

// Wait blocks until the build's runner has exited, for callers (the demo,
// tests) that want to follow one build to its end.
func (e *Executor) Wait(ctx context.Context, buildJobID string) (int, error) {
	e.mu.Lock()
	p, ok := e.builds[buildJobID]
	e.mu.Unlock()
	if !ok {
		return 0, executor.ErrNotFound
	}
	select {
	case <-p.done:
		return p.exitCode, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// LogPath is where the build's output is kept.
func (e *Executor) LogPath(buildJobID string) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p, ok := e.builds[buildJobID]
	if !ok {
		return "", false
	}
	return p.logPath, true
}

var _ executor.Executor = (*Executor)(nil)
