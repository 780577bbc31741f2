package api_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/alternatefutures/af-builder/functions/dispatch/api"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes/kubetest"
	"github.com/alternatefutures/af-builder/internal/testinfra/callbacksink"
)

func TestReapReportsAnOOMKilledBuildFailedExactlyOnce(t *testing.T) {
	t.Parallel()
	h := start(t, options{})
	const id = "cm9x2k7f3oom1"
	if r := h.call("POST", "/v1/builds", apiRequest(id), signed); r.Code != http.StatusAccepted {
		t.Fatalf("create: %d %s", r.Code, r.Body)
	}
	h.kenv.PodOf(t, h.job(id), kubetest.Terminated(kubernetes.BuilderContainer, 137, "OOMKilled"))

	ctx := context.Background()
	n, err := h.srv.Reap(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Reap = %d, %v; want 1 reported", n, err)
	}
	ds := h.sink.Deliveries(id)
	if len(ds) != 1 {
		t.Fatalf("%d deliveries for %s, want exactly one FAILED", len(ds), id)
	}
	d := ds[0]
	if !d.Accepted() || d.Status != "FAILED" {
		t.Fatalf("delivery = %s answered %d (%s); want FAILED accepted with a valid token", d.Status, d.Answered, d.Reason)
	}
	if msg, _ := d.Payload["errorMessage"].(string); !strings.Contains(msg, "OOMKilled (exit 137)") || !strings.Contains(msg, "memory limit") {
		t.Errorf("errorMessage = %q, want the OOM kill explained", msg)
	}
	if d.Payload["errorClass"] != "infrastructure" {
		t.Errorf("errorClass = %v, want infrastructure", d.Payload["errorClass"])
	}

	if n, err := h.srv.Reap(ctx); err != nil || n != 0 {
		t.Errorf("second Reap = %d, %v; want nothing", n, err)
	}
	if got := len(h.sink.Deliveries(id)); got != 1 {
		t.Errorf("%d deliveries after the second Reap, want still one", got)
	}
}

// lostOnce is an executor whose only news is one lost build.
type lostOnce struct {
	executor.Executor
	lost []executor.Lost
}

func (l *lostOnce) Reap(context.Context) ([]executor.Lost, error) {
	out := l.lost
	l.lost = nil
	return out, nil
}

func TestReapReportsToTheAPITheBuildReportedTo(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	sink := func() *callbacksink.Sink {
		s, err := callbacksink.Start(ctx, callbacksink.Options{Secret: callbackSecret})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	configured, own := sink(), sink()
	exec := &lostOnce{lost: []executor.Lost{
		{BuildJobID: "own-1", Reason: "the build pod was evicted: node drained", CallbackURL: own.URL()},
		{BuildJobID: "default-1", Reason: "the build pod disappeared (node lost?)"},
	}}
	srv := api.New(api.Config{
		CallbackSecret:  callbackSecret,
		CallbackURL:     strings.TrimSuffix(configured.URL(), callbacksink.Path),
		CallbackTimeout: 3 * time.Second,
	}, api.Deps{Executor: exec, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})

	if n, err := srv.Reap(ctx); n != 2 || err != nil {
		t.Fatalf("Reap = %d, %v; want 2", n, err)
	}
	if d, ok := own.Terminal("own-1"); !ok || d.Status != "FAILED" {
		t.Errorf("own-1 did not reach its own CALLBACK_URL: %+v", d)
	}
	if d, ok := configured.Terminal("default-1"); !ok || d.Status != "FAILED" {
		t.Errorf("default-1 did not reach the configured CALLBACK_URL: %+v", d)
	}
	if len(configured.Deliveries("own-1")) != 0 || len(own.Deliveries("default-1")) != 0 {
		t.Error("a report went to the wrong API")
	}
}
