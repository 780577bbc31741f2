// Package executor is how dispatch starts, stops and inspects one runner.
// Implementations: kubernetes (a Job beside a dind sidecar) and, for the
// local demo, a child process. Both receive the same env contract.
package executor

import (
	"context"
	"errors"

	"github.com/alternatefutures/af-builder/shared/contract"
)

// Build is one runner to start.
type Build struct {
	// Env is the complete, validated runner contract, secrets included; the
	// executor decides how secrets reach the runner (a Secret, a process env).
	Env contract.Env
	// ServiceID and Branch group builds for supersede; empty for builds that
	// should never be superseded.
	ServiceID string
	Branch    string
	// CommitSHA is the resolved commit, for labels and status.
	CommitSHA string
	// Trigger says what asked for the build: "push" or "api".
	Trigger string
}

// Handle names what was started.
type Handle struct {
	Name      string `json:"jobName"`
	Namespace string `json:"namespace,omitempty"`
	// Created is false when the build already existed (a duplicate request or
	// webhook redelivery); callers answer both cases the same way.
	Created bool `json:"-"`
}

// State is a build's coarse status as the executor sees it.
type State string

const (
	StatePending   State = "pending"
	StateRunning   State = "running"
	StateSucceeded State = "succeeded"
	StateFailed    State = "failed"
	StateNotFound  State = "not_found"
)

// ErrNotFound is returned by Cancel for an unknown build.
var ErrNotFound = errors.New("build not found")

// Executor runs builds. Submit must be idempotent on Env.BuildJobID.
type Executor interface {
	Submit(ctx context.Context, b Build) (Handle, error)
	// Cancel stops the build and removes what Submit created.
	Cancel(ctx context.Context, buildJobID string) error
	Status(ctx context.Context, buildJobID string) (State, error)
	// Active lists the build ids of unfinished builds of one service and
	// branch, oldest first: supersede cancels only those older than a new one.
	Active(ctx context.Context, serviceID, branch string) ([]string, error)
}
