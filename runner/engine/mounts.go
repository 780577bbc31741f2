package engine

import (
	"cmp"
	"context"
	"io"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/session/filesync"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/alternatefutures/af-builder/runner/builder"
)

// helperBuild is builder.HelperBuild on the engine: a build of its own,
// tagged and pushed through the Engine API when it has somewhere to go. The
// engine keeps every build's result as an image; the helper's is removed
// (the next helper build makes a new one), so a long-lived daemon does not
// collect one per build.
func (e *Engine) helperBuild(req builder.Request) builder.HelperBuild {
	return func(ctx context.Context, dockerfile, pushTo string, out io.Writer) error {
		dfFS, remove, err := builder.HelperContext(dockerfile)
		if err != nil {
			return err
		}
		defer remove()
		sessionID, stopSession, err := e.startSession(ctx, req, filesync.StaticDirSource{"context": dfFS, "dockerfile": dfFS})
		if err != nil {
			return err
		}
		defer stopSession()
		nonce, value := builder.HelperNonce(req)
		opts := client.ImageBuildOptions{
			Version:       build.BuilderBuildKit,
			SessionID:     sessionID,
			RemoteContext: "client-session",
			Dockerfile:    "Dockerfile",
			BuildArgs:     map[string]*string{nonce: &value},
			NetworkMode:   "none",
			Remove:        true,
			ForceRemove:   true,
		}
		if req.Platform != "" {
			pl, err := platforms.Parse(req.Platform)
			if err != nil {
				return err
			}
			opts.Platforms = []ocispec.Platform{pl}
		}
		if pushTo != "" {
			opts.Tags = []string{pushTo}
		}
		res, err := e.cli.ImageBuild(ctx, nil, opts)
		if err != nil {
			return err
		}
		id, err := stepOutput(res.Body, out)
		res.Body.Close()
		// By its tag when it has one; never forced, so an image anything
		// else names stays.
		if ref := cmp.Or(pushTo, id); ref != "" {
			defer func() {
				_, _ = e.cli.ImageRemove(context.WithoutCancel(ctx), ref, client.ImageRemoveOptions{PruneChildren: true})
			}()
		}
		if err != nil || pushTo == "" {
			return err
		}
		_, err = e.push(ctx, pushTo, req, io.Discard)
		return err
	}
}
