// Package executor is how dispatch starts, stops and inspects one runner.
// Implementations: kubernetes (a Job beside a dind sidecar) and, for the
// local demo, a child process. Both receive the same env contract.
package executor

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

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
	// PushedAt is when GitHub recorded the push that asked for the build;
	// zero for API builds. Active orders by it (then by submission), so a
	// late or redelivered old push never counts as newer than a later one.
	PushedAt time.Time
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

// ErrGone is returned by Submit when the build's Job was deleted (a cancel
// or a supersede, usually) while this Submit was creating or finding it.
// Whoever deleted it decided the build's fate; nothing is created again.
var ErrGone = errors.New("the build was deleted while it was being submitted")

// Executor runs builds. Submit must be idempotent on Env.BuildJobID.
type Executor interface {
	Submit(ctx context.Context, b Build) (Handle, error)
	// Cancel stops the build and removes what Submit created.
	Cancel(ctx context.Context, buildJobID string) error
	Status(ctx context.Context, buildJobID string) (State, error)
	// Active lists the build ids of unfinished builds of one service and
	// branch, oldest first: by PushedAt where set (a build without one
	// counts from its submission), then by submission. Supersede cancels
	// the ones older than a new build, or the new one if a newer is running.
	Active(ctx context.Context, serviceID, branch string) ([]string, error)
	// Reap returns the builds whose runner ended without delivering its
	// terminal status (killed, evicted, lost with its node, or unable to
	// reach the API); each is returned once (the executor marks it).
	// Dispatch reports them FAILED, so no build stays RUNNING forever.
	Reap(ctx context.Context) ([]Lost, error)
	// Superseded lists every unfinished build that a newer unfinished
	// build of the same service and branch supersedes (by the order of
	// Active): the cancels a push could not finish in its own time.
	Superseded(ctx context.Context) ([]Stale, error)
}

// Stale is an unfinished build a newer one supersedes.
type Stale struct {
	BuildJobID string
	// By is the newest build of its service and branch.
	By        string
	ServiceID string
	Branch    string
	// CallbackURL is the runner's own CALLBACK_URL, where its CANCELED
	// goes; empty when it is not known.
	CallbackURL string
}

// Lost is a build whose runner will never report again.
type Lost struct {
	BuildJobID string
	// Reason is user-readable: it becomes the build's error message.
	Reason string
	// CallbackURL is the runner's own CALLBACK_URL, so the FAILED goes to
	// the API the build was reporting to; empty when it is not known.
	CallbackURL string
}

// Order is a build's place among the builds of its branch.
type Order struct {
	Pushed    time.Time // the push's time; zero for API builds
	Submitted time.Time
	Name      string // last resort, so the order is total
}

// Older reports whether a comes before b: by push time (a build without one
// counts from its submission), then submission, then name.
func Older(a, b Order) bool {
	ka, kb := a.key(), b.key()
	switch {
	case !ka.Equal(kb):
		return ka.Before(kb)
	case !a.Submitted.Equal(b.Submitted):
		return a.Submitted.Before(b.Submitted)
	default:
		return a.Name < b.Name
	}
}

// key is to the second: GitHub's push times have no finer resolution, so
// finer submission times must not make an API build look newer than a push
// of the same second; ties go to submission order.
func (o Order) key() time.Time {
	if o.Pushed.IsZero() {
		return o.Submitted.Truncate(time.Second)
	}
	return o.Pushed.Truncate(time.Second)
}

// Unfinished is one unfinished build, as an executor lists them for
// SupersededAmong.
type Unfinished struct {
	BuildJobID  string
	ServiceID   string
	Branch      string
	CallbackURL string
	Order       Order
}

// SupersededAmong groups builds by service and branch and returns, for
// each group, every build but the newest. Builds without a service id are
// never superseded. The result is in a stable order (by service, branch,
// then age).
func SupersededAmong(builds []Unfinished) []Stale {
	type key struct{ service, branch string }
	groups := map[key][]Unfinished{}
	var keys []key
	for _, b := range builds {
		if b.ServiceID == "" {
			continue
		}
		k := key{b.ServiceID, b.Branch}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], b)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := strings.Compare(a.service, b.service); c != 0 {
			return c
		}
		return strings.Compare(a.branch, b.branch)
	})
	var out []Stale
	for _, k := range keys {
		g := groups[k]
		if len(g) < 2 {
			continue
		}
		slices.SortStableFunc(g, func(a, b Unfinished) int {
			switch {
			case Older(a.Order, b.Order):
				return -1
			case Older(b.Order, a.Order):
				return 1
			}
			return 0
		})
		newest := g[len(g)-1].BuildJobID
		for _, b := range g[:len(g)-1] {
			out = append(out, Stale{BuildJobID: b.BuildJobID, By: newest, ServiceID: k.service, Branch: k.branch, CallbackURL: b.CallbackURL})
		}
	}
	return out
}
