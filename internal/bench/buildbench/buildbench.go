// Package buildbench measures builds of the real test applications
// (internal/testinfra/realapps) through the real runner binary, a real
// dockerd, registry, git server and callback receiver, the way `make demo`
// and the end-to-end tests run them.
//
// For each app: a fresh engine with an empty store (only the stand-in base
// images imported, which a cluster node would have pulled), a cold build,
// then one source file changed and a warm build on the same engine. The
// times are the runner's whole run (clone to pushed image and SUCCEEDED
// callback), as the platform sees a build. Measures added by other backends
// or runner variants plug in as Extra columns.
package buildbench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/client"

	"github.com/alternatefutures/af-builder/internal/bench/table"
	"github.com/alternatefutures/af-builder/internal/testinfra/appcheck"
	"github.com/alternatefutures/af-builder/internal/testinfra/baseimage"
	"github.com/alternatefutures/af-builder/internal/testinfra/callbacksink"
	"github.com/alternatefutures/af-builder/internal/testinfra/dockerd"
	"github.com/alternatefutures/af-builder/internal/testinfra/gitserver"
	"github.com/alternatefutures/af-builder/internal/testinfra/realapps"
	"github.com/alternatefutures/af-builder/internal/testinfra/registry"
	"github.com/alternatefutures/af-builder/shared/token"
)

// Column names of the table Run fills.
const (
	ColCold     = "cold"
	ColWarm     = "warm"
	ColRatio    = "warm/cold"
	ColSize     = "image size"
	ColPushed   = "pushed (compressed)"
	ColColdStep = "cold build step"
	ColWarmStep = "warm build step"
)

// Secrets of the benchmark's own services; never printed.
const (
	gitToken       = "ghs_benchGitInstallationToken0123456789"
	registryPass   = "reg-bench-Pa55word-1a2b3c"
	callbackSecret = "cb-bench-hmac-secret-7f6e5d"
)

// Options configure Run.
type Options struct {
	// Apps are the workloads; default realapps.All.
	Apps []realapps.App
	// RunnerBin is the runner binary; empty builds it.
	RunnerBin string
	// Log gets progress lines and the runners' output.
	Log io.Writer
	// Extra measures run after the warm build of each app, each filling
	// its own column.
	Extra []Measure
	// LogDir keeps every runner's log (<build id>.log) once the run ends,
	// to see where a build's time went; "" drops them.
	LogDir string
}

// Measure is one more measurement per app, e.g. a warm build on a new
// builder that has only a registry cache.
type Measure struct {
	Column string
	// Run returns the cell for app; h.Build runs the runner on any engine.
	Run func(ctx context.Context, h *Harness, w *Workload) (string, error)
}

// Harness is the shared infrastructure of a benchmark run.
type Harness struct {
	RunnerBin string
	Registry  *registry.Registry
	Git       *gitserver.Server
	Sink      *callbacksink.Sink
	Log       io.Writer
	tmp       string
	logDir    string
	seq       int
}

// Workload is one app during its measurement: its repository and the
// engine its cold and warm builds ran on.
type Workload struct {
	App    realapps.App
	Repo   *gitserver.Repo
	Files  map[string]gitserver.File
	Daemon *dockerd.Daemon
	// Cold and Warm are the two builds.
	Cold, Warm Result
	warmN      int
}

// Result is one build as the platform saw it.
type Result struct {
	// Reported is the time from the runner's start to its terminal
	// callback: the build as the platform waits for it (it deploys on
	// SUCCEEDED). Wall is the runner process's whole run, the registry
	// cache export after the report included.
	Reported, Wall time.Duration
	// PhasesMs are the runner's own phase timings (clone, detect, plan,
	// build, push).
	PhasesMs map[string]float64
	Tag      string
	Digest   string
	Commit   string
	Planner  string
	Port     int
}

// Run measures every app and returns the filled table.
func Run(ctx context.Context, o Options) (*table.Table, error) {
	if len(o.Apps) == 0 {
		o.Apps = realapps.All
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	h, err := start(ctx, o)
	if err != nil {
		return nil, err
	}
	defer h.stop()

	tb := table.New("make bench-build", "app", ColCold, ColWarm, ColRatio, ColSize, ColPushed, ColColdStep, ColWarmStep)
	for _, m := range o.Extra {
		tb.AddColumn(m.Column)
	}
	imgs, err := baseimage.All()
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	if err := baseimage.Prepare(ctx, baseimage.Options{Log: o.Log}, imgs...); err != nil {
		return nil, err
	}
	tb.Note("stand-in base images (root filesystems) ready in %s (cached by recipe after the first run)", table.Duration(time.Since(t0)))

	for _, app := range o.Apps {
		w, err := h.measure(ctx, app, imgs, tb)
		if w != nil && w.Daemon != nil {
			w.Daemon.Stop()
		}
		if err != nil {
			return tb, fmt.Errorf("%s: %w", app.Name, err)
		}
		for _, m := range o.Extra {
			v, err := m.Run(ctx, h, w)
			if err != nil {
				return tb, fmt.Errorf("%s: %s: %w", app.Name, m.Column, err)
			}
			tb.Set(app.Name, m.Column, v)
		}
	}
	tb.Note("cold: a new dockerd with an empty store and build cache (stand-in base images imported first, untimed); warm: the same engine, %s changed", "one source file")
	tb.Note("times are the runner's whole run: clone, detect, plan, build, push to a local registry, SUCCEEDED callback; build step = the runner's build phase alone")
	tb.Note("machine: %d CPUs (GOMAXPROCS), load average at the end %s", runtime.NumCPU(), loadavg())
	return tb, nil
}

func (h *Harness) measure(ctx context.Context, app realapps.App, imgs []baseimage.Image, tb *table.Table) (*Workload, error) {
	fmt.Fprintf(h.Log, "bench: %s (%s): fresh dockerd\n", app.Name, app.Stack)
	w := &Workload{App: app}
	var err error
	if w.Daemon, err = dockerd.Start(ctx, dockerd.Options{}); err != nil {
		return w, err
	}
	t0 := time.Now()
	if err := baseimage.Import(ctx, w.Daemon.Host(), baseimage.Options{Log: h.Log}, imgs...); err != nil {
		return w, err
	}
	fmt.Fprintf(h.Log, "bench: %s: stand-ins imported in %s\n", app.Name, time.Since(t0).Round(time.Millisecond))
	if w.Files, err = app.Files(); err != nil {
		return w, err
	}
	if w.Repo, err = h.Git.CreateRepo(fmt.Sprintf("bench/%s-%d", app.Name, time.Now().UnixNano())); err != nil {
		return w, err
	}
	sha, err := w.Repo.Commit("main", w.Files, "import "+app.Name)
	if err != nil {
		return w, err
	}
	if w.Cold, err = h.Build(ctx, w.Daemon.Host(), w, sha, nil); err != nil {
		return w, fmt.Errorf("cold build: %w", err)
	}
	fmt.Fprintf(h.Log, "bench: %s: cold %s\n", app.Name, table.Duration(w.Cold.Reported))
	if sha, err = w.Change(); err != nil {
		return w, err
	}
	if w.Warm, err = h.Build(ctx, w.Daemon.Host(), w, sha, nil); err != nil {
		return w, fmt.Errorf("warm build: %w", err)
	}
	fmt.Fprintf(h.Log, "bench: %s: warm %s\n", app.Name, table.Duration(w.Warm.Reported))
	// A warm build that is all cache hits would be fast for nothing: the
	// changed source must be in a new layer (labels alone differ anyway).
	coldLayers, err := h.layers(ctx, w.Cold.Tag)
	if err != nil {
		return w, err
	}
	warmLayers, err := h.layers(ctx, w.Warm.Tag)
	if err != nil {
		return w, err
	}
	if slices.Equal(coldLayers, warmLayers) {
		return w, fmt.Errorf("the warm build's layers are the cold build's: the source change did not reach the image")
	}

	// The image must work, or the times mean nothing.
	c, err := client.New(client.WithHost(w.Daemon.Host()))
	if err != nil {
		return w, err
	}
	defer c.Close()
	actx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	got, err := appcheck.Get(actx, c, w.Warm.Tag, w.Warm.Port, "/")
	if err != nil {
		return w, fmt.Errorf("the warm build's image: %w", err)
	}
	if got.Status != 200 || !strings.Contains(got.Body, app.Answer) {
		return w, fmt.Errorf("the warm build's image answered %d %.200q, want 200 with %q", got.Status, got.Body, app.Answer)
	}
	img, err := c.ImageInspect(ctx, w.Warm.Tag)
	if err != nil {
		return w, err
	}
	pushed, err := h.pushedSize(ctx, w.Warm.Tag)
	if err != nil {
		return w, err
	}

	tb.Set(app.Name, ColCold, table.Duration(w.Cold.Reported))
	tb.Set(app.Name, ColWarm, table.Duration(w.Warm.Reported))
	tb.Set(app.Name, ColRatio, table.Ratio(w.Warm.Reported, w.Cold.Reported))
	tb.Set(app.Name, ColSize, table.Size(img.Size))
	tb.Set(app.Name, ColPushed, table.Size(pushed))
	tb.Set(app.Name, ColColdStep, table.Duration(time.Duration(w.Cold.PhasesMs["build"])*time.Millisecond))
	tb.Set(app.Name, ColWarmStep, table.Duration(time.Duration(w.Warm.PhasesMs["build"])*time.Millisecond))
	return w, nil
}

// Change commits the app's next one-file source change and returns the
// commit.
func (w *Workload) Change() (string, error) {
	w.warmN++
	return w.Repo.Update("main", w.App.SourceChange(w.Files, w.warmN), fmt.Sprintf("warm change %d", w.warmN))
}

// Build runs the runner for w's repository at sha on the engine at
// dockerHost, with the stand-ins in the engine's store as the base image
// mirror; env adds to or overrides the build's environment (e.g. a registry
// mirror for a builder without an image store). It fails unless the build
// ends in exactly one SUCCEEDED callback.
func (h *Harness) Build(ctx context.Context, dockerHost string, w *Workload, sha string, env map[string]string) (Result, error) {
	h.seq++
	id := fmt.Sprintf("bench-%s-%d", w.App.Name, h.seq)
	tag := fmt.Sprintf("%s/bench/%s:%s", h.Registry.Addr(), w.App.Name, sha[:12])
	vars := map[string]string{
		"BUILD_JOB_ID":    id,
		"CALLBACK_URL":    h.Sink.URL(),
		"CALLBACK_TOKEN":  token.Mint([]byte(callbackSecret), id, time.Now()),
		"REPO_CLONE_URL":  w.Repo.CloneURL(gitToken),
		"REPO_REF":        sha,
		"IMAGE_TAG":       tag,
		"GHCR_USER":       "af-push",
		"GHCR_TOKEN":      registryPass,
		"REPO_SOURCE_URL": w.Repo.SourceURL(),
		"REPO_OWNER":      w.Repo.Owner(),
		"REPO_NAME":       w.Repo.Name(),
		"DOCKER_HOST":     dockerHost,
		"BUILD_NETWORK":   "host",
	}
	for k, v := range w.App.BuildEnv(baseimage.DefaultMirror) {
		vars[k] = v
	}
	for k, v := range env {
		vars[k] = v
	}
	cmd := exec.CommandContext(ctx, h.RunnerBin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + h.tmp}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	logPath := filepath.Join(h.logDir, id+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		return Result{}, err
	}
	defer lf.Close()
	cmd.Stdout, cmd.Stderr = lf, lf
	// The last build's daemon and its removed store leave dirty pages
	// behind; written back during this build, they would be timed with it.
	syscall.Sync()
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start)
	d, ok := h.Sink.Terminal(id)
	if err != nil || !ok || d.Status != "SUCCEEDED" {
		return Result{}, fmt.Errorf("runner: %v, terminal status %q; its log (%s) ends:\n%s", err, d.Status, logPath, tail(logPath, 40))
	}
	r := Result{Reported: d.At.Sub(start), Wall: wall, Tag: tag, Commit: sha, PhasesMs: map[string]float64{}}
	if m, ok := d.Payload["phaseTimingsMs"].(map[string]any); ok {
		for k, v := range m {
			if f, ok := v.(float64); ok {
				r.PhasesMs[k] = f
			}
		}
	}
	r.Planner, _ = d.Payload["planner"].(string)
	r.Digest, _ = d.Payload["imageDigest"].(string)
	if p, ok := d.Payload["detectedPort"].(float64); ok {
		r.Port = int(p)
	}
	if r.Planner != "template" {
		return r, fmt.Errorf("planner %q, want template: the benchmark measures the templates", r.Planner)
	}
	return r, nil
}

// layers are the diff ids of ref's layers in the registry.
func (h *Harness) layers(ctx context.Context, ref string) ([]string, error) {
	repo, tag := h.split(ref)
	cfg, err := h.Registry.ImageConfig(ctx, repo, tag)
	if err != nil {
		return nil, err
	}
	var c struct {
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(cfg.Raw, &c); err != nil {
		return nil, err
	}
	return c.RootFS.DiffIDs, nil
}

func (h *Harness) split(ref string) (repo, tag string) {
	rest := strings.TrimPrefix(ref, h.Registry.Addr()+"/")
	i := strings.LastIndexByte(rest, ':')
	return rest[:i], rest[i+1:]
}

// pushedSize is the sum of the layers' compressed sizes in the registry:
// what a node pulls.
func (h *Harness) pushedSize(ctx context.Context, ref string) (int64, error) {
	repo, tag := h.split(ref)
	m, err := h.Registry.Manifest(ctx, repo, tag)
	if err != nil {
		return 0, err
	}
	var man struct {
		Config struct{ Size int64 }   `json:"config"`
		Layers []struct{ Size int64 } `json:"layers"`
	}
	if err := json.Unmarshal(m.Body, &man); err != nil {
		return 0, err
	}
	n := man.Config.Size
	for _, l := range man.Layers {
		n += l.Size
	}
	return n, nil
}

func start(ctx context.Context, o Options) (*Harness, error) {
	tmp, err := os.MkdirTemp("", "af-bench-")
	if err != nil {
		return nil, err
	}
	h := &Harness{Log: o.Log, tmp: tmp, logDir: tmp, RunnerBin: o.RunnerBin}
	if o.LogDir != "" {
		if err := os.MkdirAll(o.LogDir, 0o755); err != nil {
			return nil, err
		}
		h.logDir = o.LogDir
	}
	ok := false
	defer func() {
		if !ok {
			h.stop()
		}
	}()
	if h.RunnerBin == "" {
		h.RunnerBin = filepath.Join(tmp, "runner")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", h.RunnerBin, "github.com/alternatefutures/af-builder/runner")
		cmd.Stdout, cmd.Stderr = o.Log, o.Log
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("build the runner: %w", err)
		}
	}
	if h.Registry, err = registry.Start(ctx, registry.Options{User: "af-push", Password: registryPass}); err != nil {
		return nil, err
	}
	if h.Git, err = gitserver.Start(ctx, gitserver.Options{Token: gitToken}); err != nil {
		return nil, err
	}
	if h.Sink, err = callbacksink.Start(ctx, callbacksink.Options{Secret: []byte(callbackSecret)}); err != nil {
		return nil, err
	}
	ok = true
	return h, nil
}

func (h *Harness) stop() {
	if h.Sink != nil {
		h.Sink.Stop()
	}
	if h.Git != nil {
		h.Git.Stop()
	}
	if h.Registry != nil {
		h.Registry.Stop()
	}
	os.RemoveAll(h.tmp)
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
