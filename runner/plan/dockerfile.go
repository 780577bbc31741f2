package plan

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/alternatefutures/af-builder/runner/failure"
)

// Dockerfile builds with the Dockerfile at the root of the source directory.
type Dockerfile struct{}

// Plan checks the Dockerfile is a regular file of the repository; a symlink
// could otherwise make the engine read a file from outside it.
func (Dockerfile) Plan(_ context.Context, src Source, log io.Writer) (Plan, error) {
	fi, err := os.Lstat(filepath.Join(src.Dir, "Dockerfile"))
	if err != nil {
		return Plan{}, failure.Wrap(failure.User, "no Dockerfile in the root directory", err)
	}
	if !fi.Mode().IsRegular() {
		return Plan{}, failure.Userf("Dockerfile must be a regular file, not a %s", describeMode(fi.Mode()))
	}
	if src.BuildCommand != "" || src.StartCommand != "" {
		fmt.Fprintln(log, "the repository has its own Dockerfile: the build and start command overrides are not used (set them in the Dockerfile)")
	}
	fmt.Fprintln(log, "using the repository's Dockerfile")
	return Plan{
		Kind:           "dockerfile",
		ContextDir:     src.Dir,
		DockerfileDir:  src.Dir,
		DockerfileName: "Dockerfile",
		Detected:       src.Detected,
	}, nil
}

func describeMode(m os.FileMode) string {
	switch {
	case m&os.ModeSymlink != 0:
		return "symlink"
	case m.IsDir():
		return "directory"
	default:
		return "special file"
	}
}
