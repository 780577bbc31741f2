package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/alternatefutures/af-builder/functions/dispatch/subscriptions"
	"github.com/alternatefutures/af-builder/functions/dispatch/webhook/webhooktest"
)

// service-cloud-api replaces a build's stored log with any logs a callback
// carries. Every terminal status dispatch sends itself (cancel, supersede,
// closing a reserved build it skips or cannot build) must leave the log the
// runner sent in place: the reason goes in errorMessage (issue 10).
func TestDispatchsOwnTerminalStatusesKeepTheStoredLog(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tail := "#7 [build 3/4] RUN npm ci\n#7 DONE 12.3s\n"
	running := func(t *testing.T, h *harness, id string) {
		t.Helper()
		if code, err := h.sink.Post(ctx, id, "RUNNING", &tail); err != nil || code != http.StatusOK {
			t.Fatalf("RUNNING for %s: %d %v", id, code, err)
		}
	}
	kept := func(t *testing.T, h *harness, id, status string) {
		t.Helper()
		d, err := h.sink.WaitTerminal(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if d.Status != status {
			t.Errorf("%s ended %s, want %s", id, d.Status, status)
		}
		if _, ok := d.Payload["logs"]; ok {
			t.Errorf("%s's %s carries logs %q", id, d.Status, d.Payload["logs"])
		}
		if d.Payload["errorMessage"] == "" || d.Payload["errorMessage"] == nil {
			t.Errorf("%s's %s has no errorMessage", id, d.Status)
		}
		if got := h.sink.Logs(id); got != tail {
			t.Errorf("%s's stored log after its %s = %q, want the runner's tail", id, d.Status, got)
		}
	}

	t.Run("cancel", func(t *testing.T) {
		h := start(t, options{})
		const id = "cm9x2k7f3logs1"
		if r := h.call("POST", "/v1/builds", apiRequest(id), signed); r.Code != http.StatusAccepted {
			t.Fatalf("create: %d %s", r.Code, r.Body)
		}
		running(t, h, id)
		if r := h.call("DELETE", "/v1/builds/"+id, nil, signed); r.Code != http.StatusOK {
			t.Fatalf("delete: %d %s", r.Code, r.Body)
		}
		kept(t, h, id, "CANCELED")
	})

	t.Run("supersede", func(t *testing.T) {
		h := start(t, options{})
		older := buildsByService(t, h.deliver("push", "delivery-logs-older", webPush(commitA)))["web"]
		running(t, h, older.BuildJobID)
		h.deliver("push", "delivery-logs-newer", webPush(commitB))
		kept(t, h, older.BuildJobID, "CANCELED")
	})

	t.Run("reserved builds not built", func(t *testing.T) {
		h := start(t, options{source: &subscriptions.HTTP{URL: lookupAPI(t), Secret: apiSecret}})
		const delivery = "6d000000-0000-4000-8000-000000000001"
		// The API holds a log for its reserved BuildJobs already (a
		// previous attempt's, say).
		for _, svc := range []string{"docs", "broken"} {
			running(t, h, "bj_"+delivery[:8]+"_"+svc)
		}
		if r := h.deliver("push", delivery, pushTo(commitA, webhooktest.Commit{Message: "x", Modified: []string{"apps/web/a.ts"}})); r.Code != http.StatusAccepted {
			t.Fatalf("answer %d: %s", r.Code, r.Body)
		}
		kept(t, h, "bj_"+delivery[:8]+"_docs", "CANCELED")
		kept(t, h, "bj_"+delivery[:8]+"_broken", "FAILED")
	})
}
