// Package buildkit is the build backend that talks to a buildkitd (the
// rootless sidecar in production, a test daemon here) with BuildKit's own
// client: the Dockerfile frontend builds, the image exporter pushes, and the
// registry cache is imported and exported in mode=max, intermediate stages
// included, which the Docker Engine's builder cannot do.
//
// One solve covers Build and Push. The build function given to BuildKit
// evaluates the Dockerfile and then waits: Build returns when the image is
// built, and Push lets the function return, which starts the image's push.
// So the two phases keep their own timings, time limits and log prefixes
// while BuildKit pushes what it built itself. The registry cache is exported
// by a second solve once the build is reported (see ExportCache).
package buildkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/containerd/platforms"
	"github.com/docker/cli/cli/config/types"
	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth/authprovider"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/tonistiigi/fsutil"

	"github.com/alternatefutures/af-builder/runner/builder"
	"github.com/alternatefutures/af-builder/runner/failure"
)

// Builder is a connection to one buildkitd.
type Builder struct {
	addr string
	c    *bkclient.Client
	s    *solve // the build between Build and Push
	// export is the solve that exports the registry cache of the last
	// push, nil when there is none.
	export *bkclient.SolveOpt
}

// Connect prepares a client for addr (a BUILDKIT_HOST value such as
// unix:///run/buildkit/buildkitd.sock). Nothing is dialled until the first
// call.
func Connect(ctx context.Context, addr string) (*Builder, error) {
	c, err := bkclient.New(context.WithoutCancel(ctx), addr)
	if err != nil {
		return nil, failure.Wrap(failure.Infrastructure, "BUILDKIT_HOST is not usable", err)
	}
	return &Builder{addr: addr, c: c}, nil
}

// Close stops a build still waiting for its push and releases the client.
func (b *Builder) Close() error {
	if b.s != nil {
		b.s.stop(errors.New("the build was abandoned before its push"))
		<-b.s.done
		b.s = nil
	}
	return b.c.Close()
}

// WaitReady asks for the daemon's workers until it lists one or ctx ends.
// The sidecar takes a moment to start, and its readiness is not visible to us.
func (b *Builder) WaitReady(ctx context.Context) (builder.Daemon, error) {
	delay := 100 * time.Millisecond
	var last error
	for {
		ws, err := b.c.ListWorkers(ctx)
		if err == nil && len(ws) > 0 {
			d := builder.Daemon{Line: "buildkitd"}
			// Info came with BuildKit 0.11, after COPY --link (0.10): an
			// older daemon, which cannot answer it, gets no linked copies.
			if info, err := b.c.Info(ctx); err == nil {
				d.CopyLink = true
				if v := info.BuildkitVersion.Version; v != "" {
					d.Line += " " + v
				}
			}
			if len(ws[0].Platforms) > 0 {
				d.Line += " ready (" + platforms.Format(ws[0].Platforms[0]) + ")"
			} else {
				d.Line += " ready"
			}
			return d, nil
		}
		if err == nil {
			err = errors.New("no workers")
		}
		last = err
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return builder.Daemon{}, failure.Wrap(failure.Infrastructure,
				fmt.Sprintf("buildkitd at %s did not answer in time", b.addr), last)
		case <-t.C:
		}
		if delay < 2*time.Second {
			delay *= 2
		}
	}
}

// solve is one BuildKit solve, from Build to the end of its export.
type solve struct {
	cancel   context.CancelCauseFunc
	progress *builder.Progress
	built    chan error    // the build function's evaluation ended
	release  chan struct{} // closed by Push: return the result, export it
	done     chan struct{} // the solve (and its status stream) ended
	resp     *bkclient.SolveResponse
	err      error
	platform string // from the built image's config
	// cache is the solve that exports the registry cache after the push,
	// nil when the build exports none.
	cache *bkclient.SolveOpt
}

func (s *solve) stop(cause error) { s.cancel(cause) }

// Build runs the Dockerfile frontend on the daemon with the registry cache
// imported, and returns once every step is done. Cancelling ctx stops the
// solve on the daemon.
func (b *Builder) Build(ctx context.Context, req builder.Request, out io.Writer) (builder.Result, error) {
	if b.s != nil {
		return builder.Result{}, failure.Wrap(failure.Infrastructure, "a build is already waiting for its push", nil)
	}
	ctxFS, err := fsutil.NewFS(req.ContextDir)
	if err != nil {
		return builder.Result{}, failure.Wrap(failure.Infrastructure, "cannot read the build context", err)
	}
	dfFS, err := fsutil.NewFS(req.DockerfileDir)
	if err != nil {
		return builder.Result{}, failure.Wrap(failure.Infrastructure, "cannot read the Dockerfile directory", err)
	}
	attrs := map[string]string{"filename": req.DockerfileName}
	for k, v := range req.Labels {
		attrs["label:"+k] = v
	}
	if req.Platform != "" {
		if _, err := platforms.Parse(req.Platform); err != nil {
			return builder.Result{}, failure.Wrap(failure.User, "TARGET_PLATFORM is not a platform", err)
		}
		attrs["platform"] = req.Platform
	}
	if req.NetworkMode == "none" {
		attrs["force-network-mode"] = "none"
	}
	// host, bridge and the default all mean the daemon's own network for RUN
	// steps: buildkitd is started with the network it should give them
	// (--oci-worker-net host beside a pod), and asking for host explicitly
	// would need the network.host entitlement granted on the daemon.

	opt := bkclient.SolveOpt{
		Ref:           req.BuildID,
		LocalMounts:   map[string]fsutil.FS{"context": ctxFS, "dockerfile": dfFS},
		FrontendAttrs: attrs,
		Exports: []bkclient.ExportEntry{{
			Type: bkclient.ExporterImage,
			Attrs: map[string]string{
				"name": req.Tag,
				"push": "true",
				// Docker media types, as the docker backend pushes.
				"oci-mediatypes": "false",
			},
		}},
		Session: []session.Attachable{authProvider(req)},
	}
	for _, ref := range req.Cache.Import {
		opt.CacheImports = append(opt.CacheImports, bkclient.CacheOptionsEntry{
			Type: "registry", Attrs: map[string]string{"ref": ref},
		})
	}
	var cacheOpt *bkclient.SolveOpt
	if req.Cache.Export != "" {
		c := opt
		c.Ref = ""
		c.Exports = nil
		c.Frontend = "dockerfile.v0"
		c.CacheExports = []bkclient.CacheOptionsEntry{{
			Type: "registry",
			Attrs: map[string]string{
				"ref":  req.Cache.Export,
				"mode": "max",
				// mode=max exports every stage's layers, a dependency
				// install's whole tree included, which the image does not
				// hold and so must be compressed for the cache alone: at
				// gzip's default level that was +57% on a cold Next.js
				// build. The fastest level keeps gzip (which every
				// daemon that imports the cache reads) for a little more
				// size. Layers the image shares are already compressed
				// and kept as they are (force-compression is off).
				"compression":       "gzip",
				"compression-level": "1",
			},
		}}
		cacheOpt = &c
	}
	builder.RestoreMounts(ctx, req, b.helperBuild(req), out)
	progress, err := builder.NewProgress(out)
	if err != nil {
		return builder.Result{}, failure.Wrap(failure.Infrastructure, "cannot show the build's progress", err)
	}
	// The solve outlives Build (Push finishes it), so it runs on a context
	// of its own that Build and Push cancel when theirs ends.
	sctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	s := &solve{
		cancel:   cancel,
		progress: progress,
		built:    make(chan error, 1),
		release:  make(chan struct{}),
		done:     make(chan struct{}),
		cache:    cacheOpt,
	}
	statuses := make(chan *bkclient.SolveStatus)
	streamed := make(chan struct{})
	go func() {
		defer close(streamed)
		for st := range statuses {
			_ = progress.Send(context.Background(), st)
		}
	}()
	go func() {
		defer close(s.done)
		defer func() { <-streamed; progress.Close() }()
		s.resp, s.err = b.c.Build(sctx, opt, "", func(ctx context.Context, gw gateway.Client) (*gateway.Result, error) {
			res, err := gw.Solve(ctx, gateway.SolveRequest{
				Frontend:    "dockerfile.v0",
				FrontendOpt: gw.BuildOpts().Opts, // attrs plus the cache imports
				Evaluate:    true,
			})
			if err == nil {
				s.platform, err = imagePlatform(res, req.Platform)
			}
			s.built <- err
			if err != nil {
				return nil, err
			}
			select {
			case <-s.release:
				return res, nil
			case <-ctx.Done():
				return nil, context.Cause(ctx)
			}
		}, statuses)
	}()

	select {
	case err = <-s.built:
	case <-s.done:
		err = s.err
		if err == nil {
			err = errors.New("the solve ended before the build function ran")
		}
	case <-ctx.Done():
		// The pipeline names the reason (timeout, signal) from its context.
		s.stop(context.Cause(ctx))
		<-s.done
		return builder.Result{}, failure.Wrap(failure.Transient, "build stopped before it finished", context.Cause(ctx))
	}
	if err != nil {
		s.stop(err)
		<-s.done // the display is closed: nothing else writes to out
		progress.ReportCacheImports(out)
		if ctx.Err() != nil {
			return builder.Result{}, failure.Wrap(failure.Transient, "build stopped before it finished", err)
		}
		return builder.Result{}, classify(err)
	}
	b.s = s
	// The solve goes on (Push finishes it); out belongs to the build phase.
	progress.Detach()
	progress.ReportCacheImports(out)
	return builder.Result{Platform: s.platform, Steps: progress.Steps()}, nil
}

// imagePlatform reads os/arch from the image config the frontend produced,
// and checks it against want (when set).
func imagePlatform(res *gateway.Result, want string) (string, error) {
	raw, ok := res.Metadata[exptypes.ExporterImageConfigKey]
	if !ok {
		return "", failure.Wrap(failure.Infrastructure, "the Dockerfile frontend returned no image config", nil)
	}
	var cfg ocispec.Platform
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return "", failure.Wrap(failure.Infrastructure, "the Dockerfile frontend returned an unreadable image config", err)
	}
	got := platforms.Normalize(cfg)
	if want != "" {
		w, err := platforms.Parse(want)
		if err != nil {
			return "", failure.Wrap(failure.User, "TARGET_PLATFORM is not a platform", err)
		}
		if !platforms.OnlyStrict(w).Match(got) {
			return "", failure.Wrap(failure.Infrastructure, fmt.Sprintf("the image was built for %s, not the target platform %s", platforms.Format(got), platforms.Format(w)), nil)
		}
	}
	return platforms.Format(got), nil
}

// Push lets the solve export: BuildKit pushes the image to req.Tag. It
// returns the manifest digest the image exporter pushed, which is the
// registry's.
func (b *Builder) Push(ctx context.Context, req builder.Request, out io.Writer) (string, error) {
	s := b.s
	if s == nil {
		return "", failure.Wrap(failure.Infrastructure, "nothing was built to push", nil)
	}
	b.s = nil
	s.progress.SetOutput(out)
	close(s.release)
	select {
	case <-s.done:
	case <-ctx.Done():
		s.stop(context.Cause(ctx))
		<-s.done
		return "", failure.Wrap(failure.Transient, "push stopped before it finished", context.Cause(ctx))
	}
	if s.err != nil {
		if ctx.Err() != nil {
			return "", failure.Wrap(failure.Transient, "push stopped before it finished", s.err)
		}
		return "", builder.ClassifyPushError(builder.DaemonMessage(s.err))
	}
	pushed := s.resp.ExporterResponse[exptypes.ExporterImageDigestKey]
	if pushed == "" {
		return "", failure.Wrap(failure.Infrastructure, "buildkitd did not report a digest for the pushed image", nil)
	}
	b.export = s.cache
	if s.cache != nil {
		fmt.Fprintf(out, "cache: exported to %s after this build is reported (the lines prefixed cache: in the runner's log)\n", req.Cache.Export)
		builder.MountsExportFollows(req, out)
	}
	return pushed, nil
}

// ExportCache exports the registry cache in a solve of its own, after the
// image is pushed. In one solve BuildKit pushes the image and exports the
// cache in parallel, so the layers both hold are uploaded to the same
// repository twice at once, and registries do not all take that: Debian's
// Distribution answered the image's upload "digest did not match uploaded
// content" and the push failed. Every step is in the daemon's cache by now,
// so this solve only exports.
func (b *Builder) ExportCache(ctx context.Context, req builder.Request, out io.Writer) {
	opt, ref := b.export, req.Cache.Export
	b.export = nil
	if opt == nil || ref == "" {
		return
	}
	// The mounts go after the layers: the next build gains more from
	// those, and the export's time limit may end this.
	defer builder.ExportMounts(ctx, req, b.helperBuild(req), out)
	fmt.Fprintf(out, "exporting to %s (mode=max)\n", ref)
	progress, err := builder.NewProgress(out)
	if err != nil {
		fmt.Fprintf(out, "export to %s failed (the build goes on): %v\n", ref, err)
		return
	}
	statuses := make(chan *bkclient.SolveStatus)
	shown := make(chan struct{})
	go func() {
		defer close(shown)
		defer progress.Close()
		exporting := map[digest.Digest]bool{}
		for st := range statuses {
			if st = onlyCacheExport(st, exporting); st != nil {
				_ = progress.Send(context.Background(), st)
			}
		}
	}()
	_, err = b.c.Solve(ctx, nil, *opt, statuses)
	<-shown
	switch {
	case err == nil:
		fmt.Fprintf(out, "exported to %s (mode=max)\n", ref)
	case ctx.Err() != nil:
		fmt.Fprintf(out, "export to %s stopped: %v\n", ref, context.Cause(ctx))
	default:
		fmt.Fprintf(out, "export to %s failed (the build goes on): %s\n", ref, builder.DaemonMessage(err))
	}
}

// onlyCacheExport keeps the part of st about exporting the cache: the
// second solve goes through every Dockerfile step again, all of them
// cached, which the build's log has already shown. exporting remembers
// which vertices are the export's across updates.
func onlyCacheExport(st *bkclient.SolveStatus, exporting map[digest.Digest]bool) *bkclient.SolveStatus {
	kept := &bkclient.SolveStatus{}
	for _, v := range st.Vertexes {
		if strings.HasPrefix(v.Name, "exporting cache") {
			exporting[v.Digest] = true
		}
		if exporting[v.Digest] {
			kept.Vertexes = append(kept.Vertexes, v)
		}
	}
	for _, s := range st.Statuses {
		if exporting[s.Vertex] {
			kept.Statuses = append(kept.Statuses, s)
		}
	}
	for _, l := range st.Logs {
		if exporting[l.Vertex] {
			kept.Logs = append(kept.Logs, l)
		}
	}
	if len(kept.Vertexes)+len(kept.Statuses)+len(kept.Logs) == 0 {
		return nil
	}
	return kept
}

// authProvider answers the daemon's credential requests (FROM images, the
// push, the cache) with the build's registry credentials for their registry
// only, and anonymously for any other.
func authProvider(req builder.Request) session.Attachable {
	return authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{
		AuthConfigProvider: func(_ context.Context, host string, _ []string, _ authprovider.ExpireCachedAuthCheck) (types.AuthConfig, error) {
			if req.RegistryUser != "" && host == req.RegistryHost {
				return types.AuthConfig{Username: req.RegistryUser, Password: req.RegistryToken, ServerAddress: host}, nil
			}
			return types.AuthConfig{}, nil
		},
	})
}

// classify turns a failed solve into a classified error with BuildKit's own
// message (without the gRPC wrapping) for the user.
func classify(err error) error {
	return builder.ClassifyBuildError(builder.DaemonMessage(err), err)
}
