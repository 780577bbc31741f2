// Package dryrun is an executor that creates nothing: each Submit writes
// the rendered objects (secret values redacted) to a writer. It lets the
// whole webhook and API path run against a real GitHub App and subscription
// source without a cluster, and shows what would have been created.
package dryrun

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/alternatefutures/af-builder/functions/dispatch/executor"
)

// RenderFunc writes b's objects to w, redacted, and names them.
type RenderFunc func(w io.Writer, b executor.Build) (executor.Handle, error)

// Executor renders instead of running.
type Executor struct {
	render RenderFunc
	mu     sync.Mutex
	out    io.Writer
	n      int
}

var _ executor.Executor = (*Executor)(nil)

// New returns an Executor writing to out.
func New(render RenderFunc, out io.Writer) *Executor {
	return &Executor{render: render, out: out}
}

// Submit renders b. Nothing is remembered, so a repeat renders again.
func (e *Executor) Submit(_ context.Context, b executor.Build) (executor.Handle, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n > 0 {
		if _, err := io.WriteString(e.out, "---\n"); err != nil {
			return executor.Handle{}, fmt.Errorf("dry run: %w", err)
		}
	}
	e.n++
	h, err := e.render(e.out, b)
	if err != nil {
		return h, fmt.Errorf("dry run: render build %s: %w", b.Env.BuildJobID, err)
	}
	h.Created = true
	return h, nil
}

// Cancel finds nothing: nothing was created.
func (e *Executor) Cancel(context.Context, string) error { return executor.ErrNotFound }

// Status finds nothing.
func (e *Executor) Status(context.Context, string) (executor.State, error) {
	return executor.StateNotFound, nil
}

// Active finds nothing.
func (e *Executor) Active(context.Context, string, string) ([]string, error) { return nil, nil }

// Reap finds nothing: a dry run starts no runner that could be lost.
func (e *Executor) Reap(context.Context) ([]executor.Lost, error) { return nil, nil }

// Superseded finds nothing.
func (e *Executor) Superseded(context.Context) ([]executor.Stale, error) { return nil, nil }
