// Package plan turns a checked-out source directory into a Dockerfile build.
// Three planners do it, each in a file named after it: the repository's own
// Dockerfile, a Template the runner renders for a stack it knows, and
// Nixpacks for everything else. Planners.Plan chooses one and runs it.
package plan

import (
	"context"
	"fmt"
	"io"

	"github.com/alternatefutures/af-builder/runner/detect"
	"github.com/alternatefutures/af-builder/runner/failure"
	"github.com/alternatefutures/af-builder/shared/validate"
)

// Source is what planning starts from.
type Source struct {
	// Dir is the resolved ROOT_DIRECTORY inside the checkout: the build context.
	Dir      string
	Detected detect.Result
	// BuildCommand and StartCommand are the service's overrides; empty when unset.
	BuildCommand, StartCommand string
	// CacheKey is stable across builds of one service and differs between
	// services, so cache mounts are shared between one service's builds on
	// the same engine and never with another's.
	CacheKey string
	// Builder is the BUILDER choice: auto (or empty), dockerfile, template, nixpacks.
	Builder string
	// Platform is the image's target platform, e.g. linux/amd64.
	Platform string
	// CopyLink: the builder takes COPY --link (builder.Daemon), which a
	// template's runtime stage then uses for what it copies from the
	// stages before.
	CopyLink bool
	// WorkDir is a directory outside Dir that a planner may write into.
	WorkDir string
}

// Plan is a Dockerfile build and how it came about.
type Plan struct {
	// Planner is the name of the planner that made it: dockerfile, template or nixpacks.
	Planner string
	// Why says why that planner was chosen, for the build log and the callback.
	Why            string
	ContextDir     string
	DockerfileDir  string
	DockerfileName string
	// Recipe summarises a template build (nil for the other planners).
	Recipe *Recipe
	// Hints are what the planner found out that detection can use: the plan
	// holds build inputs; the pipeline asks detection to refine its result.
	Hints detect.Hints
}

// Planner makes a Plan, writing what it does to log.
type Planner interface {
	// Name is the planner's name as BUILDER and the callback's planner field spell it.
	Name() string
	Plan(ctx context.Context, src Source, log io.Writer) (Plan, error)
}

// Planners are the three planners, configured.
type Planners struct {
	Dockerfile Dockerfile
	Template   Template
	Nixpacks   Nixpacks
}

// Choice is the planner that will run and why.
type Choice struct {
	Planner Planner
	Why     string
}

// Choose picks the planner for src: with BUILDER=auto the repository's
// Dockerfile first, else a template when detection is confident and one
// exists for the stack, else Nixpacks; any other BUILDER value is obeyed or
// fails with a user error saying why it cannot be.
func (ps Planners) Choose(src Source) (Choice, error) {
	d := src.Detected
	switch src.Builder {
	case "", validate.BuilderAuto:
		if d.HasDockerfile {
			return Choice{ps.Dockerfile, "the repository has a Dockerfile"}, nil
		}
		if r, err := ps.Template.Recipe(src); err == nil {
			return Choice{ps.Template, fmt.Sprintf("no Dockerfile; detection is confident (%s) and the %s template fits", r.describe(), r.Template)}, nil
		} else {
			return Choice{ps.Nixpacks, fmt.Sprintf("no Dockerfile and no template: %v", err)}, nil
		}
	case validate.BuilderDockerfile:
		if !d.HasDockerfile {
			return Choice{}, failure.Userf("BUILDER=dockerfile but the root directory has no Dockerfile")
		}
		return Choice{ps.Dockerfile, "BUILDER=dockerfile"}, nil
	case validate.BuilderTemplate:
		r, err := ps.Template.Recipe(src)
		if err != nil {
			return Choice{}, failure.Userf("BUILDER=template but there is no template for this app: %v; use BUILDER=auto or nixpacks, or add a Dockerfile", err)
		}
		why := fmt.Sprintf("BUILDER=template (%s, %s template)", r.describe(), r.Template)
		if d.HasDockerfile {
			why += "; the repository's Dockerfile is not used"
		}
		return Choice{ps.Template, why}, nil
	case validate.BuilderNixpacks:
		return Choice{ps.Nixpacks, "BUILDER=nixpacks"}, nil
	}
	return Choice{}, failure.Userf("BUILDER %q: %v", src.Builder, validate.Builder(src.Builder))
}

// Plan chooses a planner for src and runs it.
func (ps Planners) Plan(ctx context.Context, src Source, log io.Writer) (Plan, error) {
	c, err := ps.Choose(src)
	if err != nil {
		return Plan{}, err
	}
	fmt.Fprintf(log, "planner %s: %s\n", c.Planner.Name(), c.Why)
	p, err := c.Planner.Plan(ctx, src, log)
	if err != nil {
		return Plan{}, err
	}
	p.Planner, p.Why = c.Planner.Name(), c.Why
	return p, nil
}
