package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/containerd/platforms"
	"github.com/docker/cli/cli/config/types"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth/authprovider"
	"github.com/moby/buildkit/session/filesync"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/tonistiigi/fsutil"

	"github.com/alternatefutures/af-builder/runner/builder"
	"github.com/alternatefutures/af-builder/runner/failure"
)

// Build runs req with the engine's BuildKit, streaming progress lines to out,
// and returns the image id. Cancelling ctx stops the build on the daemon.
//
// The registry cache the engine can use: cache-from req.Cache.Import (a
// BuildKit cache manifest or an image with inline cache metadata), and
// inline cache metadata in the image itself, which Push also tags as
// req.Cache.Export. The engine cannot export a cache of intermediate stages
// (mode=max): that needs the buildkit backend. The cache mounts the plan
// carries are restored first (builder.RestoreMounts) and exported after the
// report (ExportCache), by helper builds of their own.
//
// The build context travels over a BuildKit session (filesync), not as a tar
// upload: only files the Dockerfile needs are sent, and .dockerignore is
// honoured by BuildKit itself.
func (e *Engine) Build(ctx context.Context, req builder.Request, out io.Writer) (builder.Result, error) {
	ctxFS, err := fsutil.NewFS(req.ContextDir)
	if err != nil {
		return builder.Result{}, failure.Wrap(failure.Infrastructure, "cannot read the build context", err)
	}
	dfFS, err := fsutil.NewFS(req.DockerfileDir)
	if err != nil {
		return builder.Result{}, failure.Wrap(failure.Infrastructure, "cannot read the Dockerfile directory", err)
	}

	sessionID, stopSession, err := e.startSession(ctx, req, filesync.StaticDirSource{"context": ctxFS, "dockerfile": dfFS})
	if err != nil {
		return builder.Result{}, err
	}
	defer stopSession()

	var plats []ocispec.Platform
	if req.Platform != "" {
		pl, err := platforms.Parse(req.Platform)
		if err != nil {
			return builder.Result{}, failure.Wrap(failure.User, "TARGET_PLATFORM is not a platform", err)
		}
		plats = []ocispec.Platform{pl}
	}
	var args map[string]*string
	if req.Cache.Export != "" {
		// Cache metadata in the image config: what lets another engine use
		// the pushed image (and its cache tag) as cache-from.
		inline := "1"
		args = map[string]*string{"BUILDKIT_INLINE_CACHE": &inline}
	}
	builder.RestoreMounts(ctx, req, e.helperBuild(req), out)
	res, err := e.cli.ImageBuild(ctx, nil, client.ImageBuildOptions{
		Version:       build.BuilderBuildKit,
		SessionID:     sessionID,
		BuildID:       req.BuildID,
		RemoteContext: "client-session",
		Dockerfile:    req.DockerfileName,
		Tags:          []string{req.Tag},
		Labels:        req.Labels,
		BuildArgs:     args,
		CacheFrom:     req.Cache.Import,
		NetworkMode:   req.NetworkMode,
		Platforms:     plats,
		Remove:        true,
		ForceRemove:   true,
	})
	if err != nil {
		return builder.Result{}, e.buildFailed(ctx, req.BuildID, err)
	}
	defer res.Body.Close()
	progress, err := builder.NewProgress(out)
	if err != nil {
		return builder.Result{}, failure.Wrap(failure.Infrastructure, "cannot show the build's progress", err)
	}
	id, err := buildStream(ctx, res.Body, progress)
	progress.Close()
	progress.ReportCacheImports(out)
	if err != nil {
		return builder.Result{}, e.buildFailed(ctx, req.BuildID, err)
	}
	if id == "" {
		return builder.Result{}, failure.Wrap(failure.Infrastructure, "the engine finished without reporting an image", nil)
	}
	built := builder.Result{ImageID: id, Steps: progress.Steps()}
	if req.Platform != "" {
		if built.Platform, err = e.CheckPlatform(ctx, id, req.Platform); err != nil {
			return builder.Result{}, err
		}
	}
	return built, nil
}

// startSession opens the BuildKit session a build on the engine calls back
// into: the directories it reads, and the registry credentials for the
// build's registry only. stop ends it once the build's stream is read.
func (e *Engine) startSession(ctx context.Context, req builder.Request, dirs filesync.StaticDirSource) (id string, stop func(), err error) {
	// The session outlives the build request: BuildKit keeps calling back into
	// it until the stream ends.
	sessCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	sess, err := session.NewSession(sessCtx, "af-builder")
	if err != nil {
		cancel()
		return "", nil, failure.Wrap(failure.Infrastructure, "cannot start a BuildKit session", err)
	}
	sess.Allow(filesync.NewFSSyncProvider(dirs))
	sess.Allow(authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{
		AuthConfigProvider: func(_ context.Context, host string, _ []string, _ authprovider.ExpireCachedAuthCheck) (types.AuthConfig, error) {
			if req.RegistryUser != "" && host == req.RegistryHost {
				return types.AuthConfig{Username: req.RegistryUser, Password: req.RegistryToken, ServerAddress: host}, nil
			}
			return types.AuthConfig{}, nil
		},
	}))
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("buildkit session crashed: %v", r)
				cancel()
			}
		}()
		done <- sess.Run(sessCtx, func(ctx context.Context, proto string, meta map[string][]string) (net.Conn, error) {
			return e.cli.DialHijack(ctx, "/session", proto, meta)
		})
	}()
	return sess.ID(), func() {
		sess.Close()
		cancel()
		<-done
	}, nil
}

// buildFailed classifies a build error and, when ours was the side that gave
// up, makes sure the daemon stops too.
func (e *Engine) buildFailed(ctx context.Context, buildID string, err error) error {
	if ctx.Err() != nil {
		// Closing the request already stops the build; BuildCancel is the
		// safeguard for a daemon that missed the disconnect.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, _ = e.cli.BuildCancel(cctx, buildID, client.BuildCancelOptions{})
		// The pipeline names the reason (timeout, signal) from its context.
		return failure.Wrap(failure.Transient, "build stopped before it finished", err)
	}
	var se *StreamError
	if errors.As(err, &se) {
		return builder.ClassifyBuildError(se.Message, err)
	}
	return failure.Wrap(failure.Infrastructure, "the Docker engine failed during the build", err)
}
