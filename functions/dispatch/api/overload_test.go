package api_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/alternatefutures/af-builder/functions/dispatch/subscriptions"
	"github.com/alternatefutures/af-builder/functions/dispatch/webhook/webhooktest"
)

// blockingSource holds every lookup until released, like a dispatch whose
// dependencies are saturated.
type blockingSource struct {
	started chan struct{}
	once    sync.Once
	release chan struct{}
}

func (b *blockingSource) Lookup(ctx context.Context, _ subscriptions.PushKey) ([]subscriptions.Service, error) {
	b.once.Do(func() { close(b.started) })
	select {
	case <-b.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return nil, nil
}

// At capacity, one more request is answered 503 with Retry-After at once,
// not after queueing past GitHub's 10 s (issue 13, point 7), so that the
// redelivery finds room.
func TestOverloadIsAnswered503AtOnce(t *testing.T) {
	t.Parallel()
	src := &blockingSource{started: make(chan struct{}), release: make(chan struct{})}
	h := start(t, options{source: src, maxInFlight: 1, webhookBudget: 5 * time.Second})
	push := pushTo(commitA, webhooktest.Commit{Message: "x", Modified: []string{"apps/web/a.ts"}})

	first := make(chan response, 1)
	go func() { first <- h.deliver("push", "7a000000-0000-4000-8000-000000000001", push) }()
	<-src.started

	start := time.Now()
	r := h.deliver("push", "7a000000-0000-4000-8000-000000000002", push)
	took := time.Since(start)
	if r.Code != http.StatusServiceUnavailable {
		t.Fatalf("second request at capacity: %d %s, want 503", r.Code, r.Body)
	}
	if took > time.Second {
		t.Errorf("the 503 took %s; an overloaded dispatch must refuse at once", took)
	}
	close(src.release)
	if got := (<-first).Code; got != http.StatusOK {
		t.Errorf("the request holding the slot ended %d", got)
	}
	// The slot is free again.
	if r := h.deliver("push", "7a000000-0000-4000-8000-000000000002", push); r.Code != http.StatusOK {
		t.Errorf("after the load: %d %s", r.Code, r.Body)
	}
}
