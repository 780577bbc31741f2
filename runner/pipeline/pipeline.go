// Package pipeline runs one build's phases in order — engine, clone, detect,
// plan, build, push — each with its own time limit and a line in the build log.
package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/distribution/reference"

	"github.com/alternatefutures/af-builder/runner/builder"
	"github.com/alternatefutures/af-builder/runner/buildkit"
	"github.com/alternatefutures/af-builder/runner/buildlog"
	"github.com/alternatefutures/af-builder/runner/cache"
	"github.com/alternatefutures/af-builder/runner/clone"
	"github.com/alternatefutures/af-builder/runner/detect"
	"github.com/alternatefutures/af-builder/runner/engine"
	"github.com/alternatefutures/af-builder/runner/failure"
	"github.com/alternatefutures/af-builder/runner/plan"
	"github.com/alternatefutures/af-builder/shared/contract"
	"github.com/alternatefutures/af-builder/shared/redact"
)

// Timeouts bound each phase; the build phase gets whatever the overall
// BUILD_TIMEOUT leaves.
type Timeouts struct {
	Engine, Clone, Detect, Plan, Push time.Duration
	// Cache bounds the registry cache export after the report.
	Cache time.Duration
}

// DefaultTimeouts suit a dind sidecar and GitHub.
var DefaultTimeouts = Timeouts{
	Engine: 2 * time.Minute,
	Clone:  5 * time.Minute,
	Detect: time.Minute,
	Plan:   10 * time.Minute,
	Push:   15 * time.Minute,
	Cache:  15 * time.Minute,
}

// Config is everything one run needs.
type Config struct {
	Env      contract.Env
	WorkDir  string // an empty directory for the checkout
	Nixpacks plan.Nixpacks
	Log      *buildlog.Log
	Timeouts Timeouts
	Now      func() time.Time
}

// Outcome is what a build produced, as far as it got.
type Outcome struct {
	CommitSHA   string
	ImageDigest string
	ImageID     string
	Detected    detect.Result
	// Planner is the planner that made the build's Dockerfile, and
	// PlannerWhy why it was chosen.
	Planner, PlannerWhy string
	Timings             map[string]time.Duration
	// Steps counts the Dockerfile steps and those taken from a cache.
	Steps builder.Steps
	// Phase is the phase running when Run returned.
	Phase failure.Phase
	// AfterReport is what a successful build leaves for after its report:
	// the registry cache export, then closing the builder. The platform
	// deploys the image as soon as it reads SUCCEEDED, and the cache only
	// speeds up the next build, so nobody should wait for it. Nil when Run
	// failed (the builder is closed then); the caller runs it once.
	AfterReport func(context.Context)
}

// TimingsMs renders Timings for the callback.
func (o Outcome) TimingsMs() map[string]int64 {
	out := make(map[string]int64, len(o.Timings))
	for k, v := range o.Timings {
		out[k] = v.Milliseconds()
	}
	return out
}

// Run executes the phases. Its error is always a *failure.Error.
func Run(ctx context.Context, cfg Config) (out Outcome, err error) {
	out.Timings = map[string]time.Duration{}
	defer func() {
		// A crash in any phase still ends in a terminal callback.
		if r := recover(); r != nil {
			cfg.Log.Printf(string(out.Phase), "internal error: %v", r)
			fmt.Fprintf(os.Stderr, "panic: %v\n%s", r, debug.Stack())
			err = failure.New(out.Phase, failure.Infrastructure, fmt.Sprintf("the runner crashed: %v", r), nil)
		}
	}()
	r := &run{cfg: cfg, out: &out}
	for _, p := range []struct {
		phase   failure.Phase
		timeout time.Duration
		fn      func(context.Context) error
	}{
		{failure.Engine, cfg.Timeouts.Engine, r.waitEngine},
		{failure.Clone, cfg.Timeouts.Clone, r.cloneRepo},
		{failure.Detect, cfg.Timeouts.Detect, r.detectSource},
		{failure.Plan, cfg.Timeouts.Plan, r.makePlan},
		{failure.Build, 0, r.buildImage},
		{failure.Push, cfg.Timeouts.Push, r.pushImage},
	} {
		out.Phase = p.phase
		if err := r.phase(ctx, p.phase, p.timeout, p.fn); err != nil {
			if r.bld != nil {
				r.bld.Close()
			}
			return out, err
		}
	}
	out.AfterReport = r.exportCache
	return out, nil
}

type run struct {
	cfg    Config
	out    *Outcome
	bld    builder.Builder
	daemon builder.Daemon
	dir    string // resolved ROOT_DIRECTORY
	plan   plan.Plan
	req    builder.Request
}

func (r *run) phase(ctx context.Context, p failure.Phase, timeout time.Duration, fn func(context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return failure.New(p, failure.Transient, "stopped before it started", context.Cause(ctx))
	}
	pctx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		pctx, cancel = context.WithTimeoutCause(ctx, timeout, fmt.Errorf("%s phase exceeded its %s limit", p, timeout))
	}
	defer cancel()
	start := time.Now()
	err := fn(pctx)
	d := time.Since(start)
	r.out.Timings[string(p)] = d
	if err != nil {
		fe := failure.From(p, err)
		// Leaves classify what they saw; only here is it known that the
		// phase's own limit or the whole build's context ended it.
		if pctx.Err() != nil {
			class := failure.Transient
			if p == failure.Engine {
				// An engine that never answers is the platform's sidecar failing.
				class = failure.Infrastructure
			}
			fe = failure.New(p, class, context.Cause(pctx).Error(), err)
		}
		r.cfg.Log.Printf(string(p), "failed after %s: %s", round(d), fe.Message)
		// The message is written for the user; the cause is what lets
		// support tell why (the pod and its stderr are gone soon after).
		if fe.Err != nil && fe.Err.Error() != fe.Message {
			r.cfg.Log.Printf(string(p), "cause: %v", fe.Err)
		}
		return fe
	}
	r.cfg.Log.Printf(string(p), "done in %s", round(d))
	return nil
}

func round(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

func (r *run) waitEngine(ctx context.Context) error {
	e := r.cfg.Env
	var err error
	switch e.Backend() {
	case contract.BackendBuildKit:
		r.cfg.Log.Printf("engine", "waiting for buildkitd at %s", e.BuildkitHost)
		r.bld, err = buildkit.Connect(ctx, e.BuildkitHost)
	default:
		r.cfg.Log.Printf("engine", "waiting for the Docker engine")
		r.bld, err = engine.Connect(e.DockerHost)
	}
	if err != nil {
		return err
	}
	d, err := r.bld.WaitReady(ctx)
	if err != nil {
		return err
	}
	r.daemon = d
	r.cfg.Log.Line("engine", d.Line)
	return nil
}

func (r *run) cloneRepo(ctx context.Context) error {
	e := r.cfg.Env
	r.cfg.Log.Printf("clone", "fetching %s at %s", redact.URL(e.RepoCloneURL), e.RepoRef)
	res, err := clone.Checkout(ctx, e.RepoCloneURL, e.RepoRef, filepath.Join(r.cfg.WorkDir, "src"))
	if err != nil {
		return err
	}
	r.out.CommitSHA = res.CommitSHA
	r.cfg.Log.Printf("clone", "checked out commit %s", res.CommitSHA)
	dir, err := clone.ResolveRoot(res.Dir, e.RootDirectory)
	if err != nil {
		return err
	}
	if e.RootDirectory != "." {
		r.cfg.Log.Printf("clone", "building in root directory %s", e.RootDirectory)
	}
	r.dir = dir
	return nil
}

func (r *run) detectSource(ctx context.Context) error {
	res, err := detect.Detect(ctx, r.dir)
	if err != nil {
		return failure.New(failure.Detect, failure.Infrastructure, "cannot read the source directory", err)
	}
	for _, l := range res.LogLines() {
		r.cfg.Log.Line("detect", l)
	}
	r.out.Detected = res
	return nil
}

func (r *run) makePlan(ctx context.Context) error {
	e := r.cfg.Env
	src := plan.Source{
		Dir:          r.dir,
		Detected:     r.out.Detected,
		BuildCommand: e.BuildCommand,
		StartCommand: e.StartCommand,
		CacheKey:     cacheKey(e.ImageTag, e.RootDirectory),
		Builder:      e.Builder,
		Platform:     e.TargetPlatform,
		CopyLink:     r.daemon.CopyLink,
		WorkDir:      filepath.Join(r.cfg.WorkDir, "plan"),
	}
	planners := plan.Planners{
		Template: plan.Template{Bases: plan.BaseImages{Mirror: e.BaseImages.Mirror, Override: e.BaseImages.Overrides()}},
		Nixpacks: r.cfg.Nixpacks,
	}
	w := r.cfg.Log.Writer("plan")
	defer w.Close()
	p, err := planners.Plan(ctx, src, w)
	if err != nil {
		return err
	}
	r.plan = p
	r.out.Planner, r.out.PlannerWhy = p.Planner, p.Why
	// What the planner found out (the start command it chose, Nixpacks'
	// plan) may settle the port detection could only guess.
	before := r.out.Detected.Port
	r.out.Detected = detect.Refine(r.out.Detected, p.Hints)
	if after := r.out.Detected.Port; after != nil && (before == nil || *before != *after) {
		r.cfg.Log.Printf("plan", "port %d: %s", *after, r.out.Detected.PortSource)
	}
	return nil
}

// cacheKey names a service's build cache: the image repository without its
// tag (one per service), plus the root directory for monorepos.
func cacheKey(imageTag, root string) string {
	name := imageTag
	if ref, err := reference.ParseNormalizedNamed(imageTag); err == nil {
		name = reference.Path(ref)
	}
	key := strings.NewReplacer("/", "-", ":", "-").Replace(name)
	if root != "." {
		key += "-" + strings.NewReplacer("/", "-").Replace(root)
	}
	return key
}

func (r *run) buildImage(ctx context.Context) error {
	e := r.cfg.Env
	now := time.Now
	if r.cfg.Now != nil {
		now = r.cfg.Now
	}
	source := e.RepoSourceURL
	if source == "" {
		source = strings.TrimSuffix(redact.URL(e.RepoCloneURL), ".git")
	}
	host := ""
	if ref, err := reference.ParseNormalizedNamed(e.ImageTag); err == nil {
		host = reference.Domain(ref)
	}
	network := e.BuildNetwork
	if network == "default" {
		network = ""
	}
	r.req = builder.Request{
		ContextDir:     r.plan.ContextDir,
		DockerfileDir:  r.plan.DockerfileDir,
		DockerfileName: r.plan.DockerfileName,
		Tag:            e.ImageTag,
		Labels: map[string]string{
			"org.opencontainers.image.source":   source,
			"org.opencontainers.image.revision": r.out.CommitSHA,
			"org.opencontainers.image.created":  now().UTC().Format(time.RFC3339),
		},
		NetworkMode:   network,
		BuildID:       "af-" + e.BuildJobID,
		RegistryHost:  host,
		RegistryUser:  e.RegistryUser,
		RegistryToken: e.RegistryToken,
		Platform:      e.TargetPlatform,
	}
	if e.CacheEnabled() {
		refs, err := cache.For(e.ImageTag, e.CacheRef, e.CacheBranch, e.CacheDefaultBranch)
		if err != nil {
			// A cache that cannot be named is a cache not used, never a failed build.
			r.cfg.Log.Printf("build", "cache: off (%v)", err)
		} else {
			r.req.Cache = builder.Cache{Import: refs.Import, Export: refs.Export}
			r.cfg.Log.Printf("build", "cache: importing %s; exporting to %s after success",
				strings.Join(refs.Import, ", then "), refs.Export)
			if m := carriedMounts(r.plan, refs); len(m.Carried) > 0 {
				r.req.Cache.Mounts = m
				var paths []string
				for _, c := range m.Carried {
					paths = append(paths, c.Path)
				}
				r.cfg.Log.Printf("build", "cache mounts %s: carried from the last build in %s",
					strings.Join(paths, ", "), strings.Join(m.Import, ", then "))
			}
		}
	} else {
		r.cfg.Log.Printf("build", "cache: off (CACHE=off)")
	}
	w := r.cfg.Log.Writer("build")
	defer w.Close()
	res, err := r.bld.Build(ctx, r.req, w)
	if err != nil {
		return err
	}
	r.out.ImageID = res.ImageID
	r.out.Steps = res.Steps
	if res.ImageID != "" {
		r.cfg.Log.Printf("build", "built image %s for %s (%s)", res.ImageID, res.Platform, res.Steps)
	} else {
		r.cfg.Log.Printf("build", "built for %s (%s)", res.Platform, res.Steps)
	}
	return nil
}

// carriedMounts are the cache mounts the template asks to carry to a new
// builder, in the images beside the cache refs.
func carriedMounts(p plan.Plan, refs cache.Refs) builder.Mounts {
	if p.Recipe == nil || len(p.Recipe.Carried) == 0 {
		return builder.Mounts{}
	}
	m := builder.Mounts{Helper: p.Recipe.BaseImage, Import: refs.MountsImport, Export: refs.MountsExport}
	for _, c := range p.Recipe.Carried {
		m.Carried = append(m.Carried, builder.Mount{ID: c.ID, Path: c.Path})
	}
	return m
}

func (r *run) pushImage(ctx context.Context) error {
	e := r.cfg.Env
	r.cfg.Log.Printf("push", "pushing %s", e.ImageTag)
	w := r.cfg.Log.Writer("push")
	defer w.Close()
	digest, err := r.bld.Push(ctx, r.req, w)
	if err != nil {
		return err
	}
	r.out.ImageDigest = digest
	r.cfg.Log.Printf("push", "pushed %s@%s", e.ImageTag, digest)
	return nil
}

// exportCache is Outcome.AfterReport: what the backend leaves for after
// SUCCEEDED (BuildKit's mode=max export compresses every stage's layers,
// the carried mounts are one more build and push), which the platform
// should not wait for. Push has said what follows.
func (r *run) exportCache(ctx context.Context) {
	defer r.bld.Close()
	if r.req.Cache.Export == "" {
		return
	}
	if t := r.cfg.Timeouts.Cache; t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, t, fmt.Errorf("the cache export exceeded its %s limit", t))
		defer cancel()
	}
	start := time.Now()
	w := r.cfg.Log.Writer("cache")
	r.bld.ExportCache(ctx, r.req, w)
	w.Close()
	r.cfg.Log.Printf("cache", "done in %s", round(time.Since(start)))
}
