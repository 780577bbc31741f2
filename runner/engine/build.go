package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
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

	"github.com/alternatefutures/af-builder/runner/failure"
)

// BuildRequest is one image build.
type BuildRequest struct {
	ContextDir     string
	DockerfileDir  string
	DockerfileName string // within DockerfileDir
	Tag            string
	Labels         map[string]string
	BuildArgs      map[string]string
	// NetworkMode for RUN steps: "" for the daemon's default, or host/none/bridge.
	NetworkMode string
	// BuildID names the build on the daemon so it can be cancelled.
	BuildID string
	// Registry credentials offered to the build for private FROM images on
	// RegistryHost.
	RegistryHost, RegistryUser, RegistryToken string
	// Platform is the image's target platform (os/arch[/variant]); empty
	// leaves it to the daemon.
	Platform string
}

// Build runs req with BuildKit, streaming progress lines to out, and returns
// the image id. Cancelling ctx stops the build on the daemon.
//
// The build context travels over a BuildKit session (filesync), not as a tar
// upload: only files the Dockerfile needs are sent, and .dockerignore is
// honoured by BuildKit itself.
func (e *Engine) Build(ctx context.Context, req BuildRequest, out io.Writer) (string, error) {
	ctxFS, err := fsutil.NewFS(req.ContextDir)
	if err != nil {
		return "", failure.Wrap(failure.Infrastructure, "cannot read the build context", err)
	}
	dfFS, err := fsutil.NewFS(req.DockerfileDir)
	if err != nil {
		return "", failure.Wrap(failure.Infrastructure, "cannot read the Dockerfile directory", err)
	}

	// The session outlives the build request: BuildKit keeps calling back into
	// it until the stream ends.
	sessCtx, stopSession := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSession()
	sess, err := session.NewSession(sessCtx, "af-builder")
	if err != nil {
		return "", failure.Wrap(failure.Infrastructure, "cannot start a BuildKit session", err)
	}
	sess.Allow(filesync.NewFSSyncProvider(filesync.StaticDirSource{"context": ctxFS, "dockerfile": dfFS}))
	sess.Allow(authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{
		AuthConfigProvider: func(_ context.Context, host string, _ []string, _ authprovider.ExpireCachedAuthCheck) (types.AuthConfig, error) {
			if req.RegistryUser != "" && host == req.RegistryHost {
				return types.AuthConfig{Username: req.RegistryUser, Password: req.RegistryToken, ServerAddress: host}, nil
			}
			return types.AuthConfig{}, nil
		},
	}))
	sessDone := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				sessDone <- fmt.Errorf("buildkit session crashed: %v", r)
				stopSession()
			}
		}()
		sessDone <- sess.Run(sessCtx, func(ctx context.Context, proto string, meta map[string][]string) (net.Conn, error) {
			return e.cli.DialHijack(ctx, "/session", proto, meta)
		})
	}()
	defer func() {
		sess.Close()
		stopSession()
		<-sessDone
	}()

	var targets []ocispec.Platform
	if req.Platform != "" {
		p, err := platforms.Parse(req.Platform)
		if err != nil {
			return "", failure.Wrap(failure.User, "TARGET_PLATFORM is not a platform", err)
		}
		targets = []ocispec.Platform{p}
	}
	args := make(map[string]*string, len(req.BuildArgs))
	for k, v := range req.BuildArgs {
		args[k] = &v
	}
	res, err := e.cli.ImageBuild(ctx, nil, client.ImageBuildOptions{
		Version:       build.BuilderBuildKit,
		SessionID:     sess.ID(),
		BuildID:       req.BuildID,
		RemoteContext: "client-session",
		Dockerfile:    req.DockerfileName,
		Tags:          []string{req.Tag},
		Labels:        req.Labels,
		BuildArgs:     args,
		NetworkMode:   req.NetworkMode,
		Platforms:     targets,
		Remove:        true,
		ForceRemove:   true,
	})
	if err != nil {
		return "", e.buildFailed(ctx, req.BuildID, err)
	}
	defer res.Body.Close()
	id, err := buildStream(ctx, res.Body, out)
	if err != nil {
		return "", e.buildFailed(ctx, req.BuildID, err)
	}
	if id == "" {
		return "", failure.Wrap(failure.Infrastructure, "the engine finished without reporting an image", nil)
	}
	return id, nil
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
		return classifyBuildError(se.Message, err)
	}
	return failure.Wrap(failure.Infrastructure, "the Docker engine failed during the build", err)
}

// classifyBuildError separates the repository's faults (a failing step, a
// bad Dockerfile, a base image that does not exist) from the engine's. What
// it does not recognise is the platform's: never the user's fault until we
// know it is.
func classifyBuildError(msg string, err error) error {
	lower := strings.ToLower(msg)
	has := func(subs ...string) bool {
		for _, s := range subs {
			if strings.Contains(lower, s) {
				return true
			}
		}
		return false
	}
	switch {
	case has("no space left on device", "out of memory", "cannot allocate memory"):
		return failure.Wrap(failure.Infrastructure, msg, err)
	case has("did not complete successfully", "executor failed running", "exit code:",
		"dockerfile parse error", "failed to parse dockerfile", "unknown instruction",
		"failed to compute cache key", "pull access denied", "failed to read dockerfile",
		"invalid reference format", "unknown flag", "no build stage", "failed to process"),
		has("not found") && has("failed to solve"):
		return failure.Wrap(failure.User, msg, err)
	case has("timeout", "connection reset", "too many requests", "temporary"):
		return failure.Wrap(failure.Transient, msg, err)
	default:
		return failure.Wrap(failure.Infrastructure, msg, err)
	}
}
