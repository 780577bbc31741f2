// Package builder is the runner's one build interface and what its backends
// share: the request, the result, and the rendering of BuildKit progress into
// the plain lines a user reads. The backends are runner/engine (BuildKit
// inside a Docker Engine, through its API) and runner/buildkit (a buildkitd,
// through BuildKit's own client).
package builder

import (
	"context"
	"io"
)

// Request is one image build and its push.
type Request struct {
	ContextDir     string
	DockerfileDir  string
	DockerfileName string // within DockerfileDir
	// Tag is the image reference built and pushed.
	Tag    string
	Labels map[string]string
	// NetworkMode for RUN steps: "" for the daemon's default, or host/none/bridge.
	NetworkMode string
	// Platform is the target platform (e.g. linux/amd64); "" for the daemon's.
	Platform string
	// BuildID names the build on the daemon so it can be cancelled.
	BuildID string
	// Registry credentials, used for the push, the cache, and private FROM
	// images, all on RegistryHost only.
	RegistryHost, RegistryUser, RegistryToken string
	// Cache is the registry layer cache; zero means none.
	Cache Cache
}

// Cache names the registry cache of one build.
type Cache struct {
	// Import is tried in order before the build.
	Import []string
	// Export receives the cache after a successful build; "" for none.
	Export string
	// Mounts are the cache mounts carried from builder to builder
	// (RestoreMounts, ExportMounts).
	Mounts Mounts
}

// Mounts are BuildKit cache mounts carried to a new builder as an image of
// their own: restored into the empty mounts before the build and exported
// after the report. A registry cache holds layers only, so without this a
// build step that lives on its cache mount (next build, go build) runs cold
// on every new builder.
type Mounts struct {
	// Carried are the mounts, by the id the Dockerfile gives them.
	Carried []Mount
	// Helper is an image with a shell and cp that the build pulls anyway
	// (the build stage's base), which moves the mounts' contents.
	Helper string
	// Import is tried in order before the build; Export receives the
	// mounts after a successful one ("" for none).
	Import []string
	Export string
}

// Mount is one cache mount.
type Mount struct {
	ID string
	// Path is where the build sees it, for the log.
	Path string
}

// Result is what a build reports before its push.
type Result struct {
	// ImageID identifies the image on the daemon, when it keeps one.
	ImageID string
	// Platform is the platform the built image's config names (os/arch),
	// read back from the build: a daemon that ignored the target platform
	// must not push an image for its own machine without a word.
	Platform string
	Steps    Steps
}

// Daemon is what WaitReady learned of the daemon.
type Daemon struct {
	// Line names the daemon for the build log.
	Line string
	// CopyLink says its Dockerfile frontend takes COPY --link (Dockerfile
	// 1.4: BuildKit 0.10, Docker Engine 23). A linked copy makes its layer
	// without the layers below it, so a build on a new builder never has to
	// pull and unpack the runtime stage's dependency layers just to put the
	// app on top: they go from the registry cache to the image as they are.
	CopyLink bool
}

// Builder builds an image and pushes it. Build then Push, once each, on one
// Request; the pipeline times them as separate phases.
type Builder interface {
	// WaitReady waits until the daemon answers, and says what it is.
	WaitReady(ctx context.Context) (Daemon, error)
	// Build runs the build, streaming progress lines to out. Cancelling ctx
	// stops it on the daemon.
	Build(ctx context.Context, req Request, out io.Writer) (Result, error)
	// Push uploads what Build made to req.Tag and returns the manifest
	// digest the registry stored.
	Push(ctx context.Context, req Request, out io.Writer) (string, error)
	// ExportCache exports what the backend left for after the report: the
	// registry cache of what Push pushed, where it did not go with the push,
	// and the carried cache mounts. Push has said in its log what follows.
	// The runner calls it once the build is reported, so its failure is one
	// line in out, never an error.
	ExportCache(ctx context.Context, req Request, out io.Writer)
	Close() error
}
