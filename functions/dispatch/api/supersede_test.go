package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/alternatefutures/af-builder/functions/dispatch/webhook/webhooktest"
)

func webPush(after string) []byte {
	return pushTo(after, webhooktest.Commit{Message: "change " + after[:7], Modified: []string{"apps/web/src/page.tsx"}})
}

func TestANewerPushSupersedesTheOlderBuildOfTheSameServiceAndBranch(t *testing.T) {
	t.Parallel()
	h := start(t, options{})
	older := buildsByService(t, h.deliver("push", "delivery-older", webPush(commitA)))["web"]
	newer := buildsByService(t, h.deliver("push", "delivery-newer", webPush(commitB)))["web"]
	if older.Status != "queued" || newer.Status != "queued" || older.BuildJobID == newer.BuildJobID {
		t.Fatalf("older %+v newer %+v", older, newer)
	}

	if ids := buildIDs(h.jobs()); len(ids) != 1 || ids[0] != newer.BuildJobID {
		t.Errorf("jobs = %v, want only the newer build", ids)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	final, err := h.sink.WaitTerminal(ctx, older.BuildJobID)
	if err != nil {
		t.Fatal(err)
	}
	if final.Status != "CANCELED" || !strings.Contains(final.Payload["errorMessage"].(string), newer.BuildJobID) {
		t.Errorf("older build's final callback = %s %v", final.Status, final.Payload)
	}
	if s, ok := h.stateAtCancel(older.BuildJobID); !ok || s != "CANCELED" {
		t.Errorf("when the older Job was deleted the API held %q (deleted: %v); CANCELED must be stored first", s, ok)
	}
	if d := h.sink.Deliveries(newer.BuildJobID); len(d) != 0 {
		t.Errorf("the newer build got callbacks: %+v", d)
	}
}

// Superseding waits on service-cloud-api (the CANCELED goes first) and on
// the API server; GitHub's answer must not. With a platform slower than the
// whole request budget, the push is still answered, and the older build
// is still canceled, after the answer.
func TestSupersedeRunsAfterTheAnswerAndOutlastsTheRequestBudget(t *testing.T) {
	t.Parallel()
	h := start(t, options{webhookBudget: 2 * time.Second, callbackTimeout: 10 * time.Second})
	older := buildsByService(t, h.deliver("push", "delivery-older", webPush(commitA)))["web"]
	h.sink.SetDelay(3 * time.Second) // every callback answered after the budget
	r := h.answer("push", "delivery-newer", webPush(commitB))
	newer := buildsByService(t, r)["web"]
	if r.Code != http.StatusAccepted || newer.Status != "queued" {
		t.Fatalf("newer push answered %d %+v", r.Code, newer)
	}
	if _, done := h.sink.Terminal(older.BuildJobID); done {
		t.Errorf("the push was answered after the older build's CANCELED; it must not wait for it")
	}
	h.core.Wait()
	final, ok := h.sink.Terminal(older.BuildJobID)
	if !ok || final.Status != "CANCELED" || !final.Accepted() {
		t.Errorf("older build's final callback = %+v (ok %v), want an accepted CANCELED", final, ok)
	}
	if ids := buildIDs(h.jobs()); len(ids) != 1 || ids[0] != newer.BuildJobID {
		t.Errorf("jobs = %v, want only the newer build", ids)
	}
}

// GitHub does not promise delivery order, and a redelivery can come much
// later: the push's own time decides which build is newer.
func TestAnOlderPushDeliveredLateIsItselfSuperseded(t *testing.T) {
	t.Parallel()
	h := start(t, options{})
	now := time.Now()
	change := func(c string) webhooktest.Commit {
		return webhooktest.Commit{Message: "change " + c[:7], Modified: []string{"apps/web/src/page.tsx"}}
	}
	newer := buildsByService(t, h.deliver("push", "delivery-newer", pushedAt(now, commitB, change(commitB))))["web"]
	late := buildsByService(t, h.deliver("push", "delivery-older-late", pushedAt(now.Add(-time.Minute), commitA, change(commitA))))["web"]
	if newer.Status != "queued" || late.Status != "queued" {
		t.Fatalf("newer %+v late %+v", newer, late)
	}
	if ids := buildIDs(h.jobs()); len(ids) != 1 || ids[0] != newer.BuildJobID {
		t.Errorf("jobs = %v, want only the newer push's build %s", ids, newer.BuildJobID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	final, err := h.sink.WaitTerminal(ctx, late.BuildJobID)
	if err != nil {
		t.Fatal(err)
	}
	if final.Status != "CANCELED" || !strings.Contains(final.Payload["errorMessage"].(string), newer.BuildJobID) {
		t.Errorf("late build's final callback = %s %v", final.Status, final.Payload)
	}
	if d := h.sink.Deliveries(newer.BuildJobID); len(d) != 0 {
		t.Errorf("the newer build got callbacks: %+v", d)
	}
}

func TestAPushSupersedesAnAPIBuildOfTheSameServiceAndBranch(t *testing.T) {
	t.Parallel()
	h := start(t, options{})
	req := apiRequest("bj-manual")
	req["serviceId"], req["branch"] = "web", "main"
	if r := h.call("POST", "/v1/builds", req, signed); r.Code != http.StatusAccepted {
		t.Fatalf("create: %d %s", r.Code, r.Body)
	}
	pushed := buildsByService(t, h.deliver("push", "delivery-after-manual", webPush(commitB)))["web"]
	if ids := buildIDs(h.jobs()); len(ids) != 1 || ids[0] != pushed.BuildJobID {
		t.Errorf("jobs = %v", ids)
	}
}

func TestSupersedeLeavesOtherServicesAndBranchesAlone(t *testing.T) {
	t.Parallel()
	h := start(t, options{})
	other := apiRequest("bj-other-branch")
	other["serviceId"], other["branch"] = "web", "staging"
	if r := h.call("POST", "/v1/builds", other, signed); r.Code != http.StatusAccepted {
		t.Fatalf("create: %d %s", r.Code, r.Body)
	}
	docs := buildsByService(t, h.deliver("push", "delivery-docs", pushTo(commitA, webhooktest.Commit{Message: "d", Modified: []string{"docs/a.md"}})))["docs"]
	web := buildsByService(t, h.deliver("push", "delivery-web", webPush(commitB)))["web"]
	if docs.Status != "queued" || web.Status != "queued" {
		t.Fatalf("docs %+v web %+v", docs, web)
	}
	if n := len(h.jobs()); n != 3 {
		t.Errorf("jobs = %v, want all three", buildIDs(h.jobs()))
	}
}

func TestSupersedeCanBeTurnedOff(t *testing.T) {
	t.Parallel()
	h := start(t, options{noSupersede: true})
	h.deliver("push", "delivery-1", webPush(commitA))
	h.deliver("push", "delivery-2", webPush(commitB))
	if n := len(h.jobs()); n != 2 {
		t.Errorf("jobs = %v, want both", buildIDs(h.jobs()))
	}
	if n := len(h.sink.Received()); n != 0 {
		t.Errorf("%d callbacks", n)
	}
}

// GitHub redelivers a push whose build a newer push superseded while the
// old Job is still being deleted (a finalizer holds it here, as a slow
// garbage collector would): the redelivery is answered 202 from the record
// of the cancel, not 503, and nothing is built again.
func TestARedeliveryOfASupersededBuildWhileItsJobGoesAwayIsAnsweredFromItsRecord(t *testing.T) {
	t.Parallel()
	h := start(t, options{})
	older := buildsByService(t, h.deliver("push", "delivery-older", webPush(commitA)))["web"]
	job := h.job(older.BuildJobID)
	if job == nil {
		t.Fatal("no job for the older build")
	}
	ctx := context.Background()
	hold := []byte(`{"metadata":{"finalizers":["af-builder.test/hold"]}}`)
	if _, err := h.kube.BatchV1().Jobs(h.ns).Patch(ctx, job.Name, types.MergePatchType, hold, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = h.kube.BatchV1().Jobs(h.ns).Patch(context.Background(), job.Name, types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
	})
	h.deliver("push", "delivery-newer", webPush(commitB))
	if j := h.job(older.BuildJobID); j == nil || j.DeletionTimestamp == nil {
		t.Fatalf("the older build's Job is not being deleted: %+v", j)
	}

	r := h.deliver("push", "delivery-older", webPush(commitA))
	again := buildsByService(t, r)["web"]
	if r.Code != http.StatusAccepted || again.BuildJobID != older.BuildJobID || again.Status != "queued" {
		t.Errorf("redelivery answered %d %+v, want 202 for the same build", r.Code, again)
	}
	if !strings.Contains(again.Reason, "canceled") {
		t.Errorf("redelivery reason %q does not say the build was canceled", again.Reason)
	}
	if got := len(h.jobs()); got != 2 {
		t.Errorf("%d jobs after the redelivery, want 2 (the newer build and the one going away)", got)
	}
}
