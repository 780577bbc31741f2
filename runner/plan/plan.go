// Package plan turns a checked-out source directory into something the
// engine can build: the repository's own Dockerfile, or one Nixpacks writes.
package plan

import (
	"context"
	"io"

	"github.com/alternatefutures/af-builder/runner/detect"
)

// Source is what planning starts from.
type Source struct {
	// Dir is the resolved ROOT_DIRECTORY inside the checkout.
	Dir      string
	Detected detect.Result
	// BuildCommand and StartCommand are the service's overrides; empty when unset.
	BuildCommand, StartCommand string
	// CacheKey is stable across builds of one service, so cache mounts are
	// shared between its builds on the same engine.
	CacheKey string
}

// Plan is a Dockerfile build.
type Plan struct {
	Kind           string // "dockerfile" or "nixpacks"
	ContextDir     string
	DockerfileDir  string
	DockerfileName string
	// Detected is the detection result, refined by the planner where it knows more.
	Detected detect.Result
}

// Planner makes a Plan, writing what it does to log.
type Planner interface {
	Plan(ctx context.Context, src Source, log io.Writer) (Plan, error)
}

// For chooses the planner: a repository that brings its own Dockerfile is
// built with it; anything else goes to Nixpacks.
func For(src Source, nixpacks Nixpacks) Planner {
	if src.Detected.HasDockerfile {
		return Dockerfile{}
	}
	return nixpacks
}
