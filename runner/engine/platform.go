package engine

import (
	"context"
	"fmt"

	"github.com/containerd/platforms"

	"github.com/alternatefutures/af-builder/runner/failure"
)

// CheckPlatform confirms the built image's config says it is for want
// (os/arch[/variant]): an engine that ignored the platform option would
// otherwise push an image for its own machine without a word.
func (e *Engine) CheckPlatform(ctx context.Context, imageID, want string) (string, error) {
	res, err := e.cli.ImageInspect(ctx, imageID)
	if err != nil {
		return "", failure.Wrap(failure.Infrastructure, "cannot inspect the built image", err)
	}
	got := platforms.Format(platforms.Normalize(platforms.Platform{
		OS: res.Os, Architecture: res.Architecture, Variant: res.Variant,
	}))
	w, err := platforms.Parse(want)
	if err != nil {
		return got, failure.Wrap(failure.User, "TARGET_PLATFORM is not a platform", err)
	}
	if !platforms.OnlyStrict(w).Match(platforms.Normalize(platforms.Platform{OS: res.Os, Architecture: res.Architecture, Variant: res.Variant})) {
		return got, failure.Wrap(failure.Infrastructure, fmt.Sprintf("the image was built for %s, not the target platform %s", got, platforms.Format(w)), nil)
	}
	return got, nil
}
