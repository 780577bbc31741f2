// Package report keeps the platform informed during a build: RUNNING with the
// growing log tail on a ticker, then exactly one terminal status.
package report

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/alternatefutures/af-builder/runner/buildlog"
	"github.com/alternatefutures/af-builder/shared/callback"
)

// Reporter sends a build's callbacks. Start once, Finish once.
type Reporter struct {
	client   *callback.Client
	buildID  string
	log      *buildlog.Log
	interval time.Duration

	mu       sync.Mutex
	started  bool
	finished bool
	// rejected is set when the API refused a RUNNING update outright: more of
	// them would be refused too, so the ticker stops sending.
	rejected bool

	stop chan struct{}
	done chan struct{}
}

// New returns a reporter for one build.
func New(client *callback.Client, buildID string, log *buildlog.Log, interval time.Duration) *Reporter {
	return &Reporter{client: client, buildID: buildID, log: log, interval: interval,
		stop: make(chan struct{}), done: make(chan struct{})}
}

// Start sends RUNNING now and then every interval until Finish. Updates never
// block the build: a slow API only delays the next update.
func (r *Reporter) Start(ctx context.Context) {
	r.mu.Lock()
	r.started = true
	r.mu.Unlock()
	// RUNNING updates stop retrying once Finish begins: an update that keeps
	// failing must not spend the terminal status's budget. An attempt already
	// on the wire still completes, so none can arrive after the terminal one.
	running := *r.client
	running.Sleep = r.sleepUnlessFinishing
	go func() {
		defer close(r.done)
		// A crash in a progress update must not take the terminal status with it.
		defer func() {
			if p := recover(); p != nil {
				slog.Error("RUNNING updates stopped after a crash", "panic", fmt.Sprint(p))
			}
		}()
		var sent uint64 = ^uint64(0)
		t := time.NewTicker(r.interval)
		defer t.Stop()
		for {
			tail, version := r.log.Tail()
			if version != sent && !r.isRejected() {
				// Each update is bounded by the interval: the next one carries a
				// newer tail anyway.
				uctx, cancel := context.WithTimeout(ctx, r.interval+5*time.Second)
				err := running.Send(uctx, callback.Payload{BuildJobID: r.buildID, Status: callback.Running, Logs: tail})
				cancel()
				r.noteRunning(err)
				sent = version
			}
			select {
			case <-r.stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// errFinishing ends a RUNNING update's retries when Finish has begun.
var errFinishing = errors.New("the terminal status is being sent")

func (r *Reporter) sleepUnlessFinishing(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.stop:
		return errFinishing
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (r *Reporter) isRejected() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rejected
}

func (r *Reporter) noteRunning(err error) {
	if err == nil || errors.Is(err, errFinishing) {
		return
	}
	var se *callback.StatusError
	if errors.As(err, &se) {
		r.mu.Lock()
		r.rejected = true
		r.mu.Unlock()
		slog.Error("platform API rejected a RUNNING update; no more updates will be sent", "code", se.Code)
		return
	}
	slog.Warn("RUNNING update not delivered", "err", err)
}

// ErrAlreadyFinished is returned by a second Finish.
var ErrAlreadyFinished = errors.New("terminal status already sent")

// Finish stops the updates, waits for one in flight (so no RUNNING can
// arrive after the terminal status) and sends p, which must be terminal. It
// sends at most once per Reporter, whatever happens.
func (r *Reporter) Finish(ctx context.Context, p callback.Payload) error {
	r.mu.Lock()
	if r.finished {
		r.mu.Unlock()
		return ErrAlreadyFinished
	}
	r.finished = true
	started := r.started
	r.mu.Unlock()

	close(r.stop)
	if started {
		select {
		case <-r.done:
		case <-ctx.Done():
		}
	}
	p.BuildJobID = r.buildID
	// An error message quotes what a tool said, which may hold a secret.
	p.ErrorMessage = r.log.Mask(p.ErrorMessage)
	switch p.Status {
	case callback.Succeeded:
		r.log.Printf("report", "build succeeded: %s@%s", p.ImageTag, p.ImageDigest)
	case callback.Failed:
		r.log.Printf("report", "build failed in phase %s (%s): %s", p.FailedPhase, p.ErrorClass, p.ErrorMessage)
	}
	p.Logs, _ = r.log.Tail()
	return r.client.Send(ctx, p)
}
