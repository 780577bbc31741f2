package api_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes"
	"github.com/alternatefutures/af-builder/functions/dispatch/replay"
	"github.com/alternatefutures/af-builder/functions/dispatch/webhook/webhooktest"
)

func replayRequest(id string) map[string]any {
	return map[string]any{
		"buildJobId": id, "installationId": installationID, "repoOwner": owner, "repoName": repo,
		"commitSha": commitA, "imageTag": "ghcr.io/acme/web:" + commitA[:12],
		"buildCommand": "npm ci\nnpm run build",
	}
}

// jobGone removes a build's Job and Secret, as for a finished build its TTL
// does (the delete) with the reaper's next round (which lets go of the
// finalizer that holds every deleted Job until then).
func (h *harness) jobGone(id string) {
	h.t.Helper()
	ctx := context.Background()
	name := kubernetes.JobName(id)
	bg := metav1.DeletePropagationBackground
	if err := h.kube.BatchV1().Jobs(h.ns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil {
		h.t.Fatal(err)
	}
	h.kube.CoreV1().Secrets(h.ns).Delete(ctx, name, metav1.DeleteOptions{})
	// Gone already when the reaper had seen it finished.
	letGo := []byte(`{"metadata":{"finalizers":null}}`)
	if _, err := h.kube.BatchV1().Jobs(h.ns).Patch(ctx, name, types.MergePatchType, letGo, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
		h.t.Fatal(err)
	}
	if h.job(id) != nil {
		h.t.Fatalf("job of %s still there", id)
	}
}

func (h *harness) record(id string) (replay.Record, bool) {
	h.t.Helper()
	recs, err := (&replay.Leases{Client: h.kube, Namespace: h.ns, Name: kubernetes.JobName}).List(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	for _, r := range recs {
		if r.BuildJobID == id {
			return r, true
		}
	}
	return replay.Record{}, false
}

// A POST repeated after the Job is gone (its TTL ran out) creates nothing:
// no Job, no Secret, no installation token; it answers with the build's last
// known state, read from its Job while it existed.
func TestRepeatAfterTheJobIsGoneCreatesNothingAndAnswersTheLastState(t *testing.T) {
	t.Parallel()
	h := start(t, options{})
	const id = "bj-replay-1"
	r := h.call("POST", "/v1/builds", replayRequest(id), signed)
	if r.Code != http.StatusAccepted {
		t.Fatalf("create: %d %s", r.Code, r.Body)
	}
	first := r.json(t)
	if first["k8sJobName"] != kubernetes.JobName(id) || first["executor"] != "kubernetes" || first["dryRun"] != false ||
		first["initialLog"] != first["log"] {
		t.Errorf("spawner fields missing from %v", first)
	}
	if rec, ok := h.record(id); !ok || rec.State != "pending" || rec.JobName != kubernetes.JobName(id) {
		t.Fatalf("record after create: %+v, %v", rec, ok)
	}
	// The Job ends; the reaper's round reads its state into the record.
	h.setJobStatus(id, func(st *batchv1.JobStatus) {
		now := metav1.Now()
		st.Succeeded, st.StartTime, st.CompletionTime = 1, &now, &now
		st.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now},
		}
	})
	if _, err := h.core.Reap(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.jobGone(id)
	tokens := len(h.gh.Tokens())

	r = h.call("POST", "/v1/builds", replayRequest(id), signed)
	if r.Code != http.StatusAccepted {
		t.Fatalf("repeat: %d %s", r.Code, r.Body)
	}
	got := r.json(t)
	if got["replayed"] != true || got["state"] != "succeeded" || got["k8sJobName"] != kubernetes.JobName(id) {
		t.Errorf("repeat answered %v; want replayed, state succeeded, the old Job's name", got)
	}
	if len(h.jobs()) != 0 || h.secret(kubernetes.JobName(id)) != nil {
		t.Error("the repeat created a Job or a Secret")
	}
	if n := len(h.gh.Tokens()); n != tokens {
		t.Errorf("the repeat minted %d installation tokens", n-tokens)
	}

	// Its status is the remembered one, not "not found".
	r = h.call("GET", "/v1/builds/"+id, nil, signed)
	if st := r.json(t); r.Code != http.StatusOK || st["state"] != "succeeded" || st["replayed"] != true {
		t.Errorf("GET after the Job is gone: %d %v; want 200, the last state, replayed", r.Code, st)
	}
	r = h.call("GET", "/v1/builds/bj-never-dispatched", nil, signed)
	if st := r.json(t); r.Code != http.StatusNotFound || st["state"] != "not_found" {
		t.Errorf("GET of a build never dispatched: %d %v; want 404 not_found", r.Code, st)
	}
}

// The same id with another request is 409, whether its Job still runs or
// is gone; the original Job is left alone.
func TestSameIDWithADifferentRequestIsAConflict(t *testing.T) {
	t.Parallel()
	h := start(t, options{})
	const id = "bj-replay-2"
	if r := h.call("POST", "/v1/builds", replayRequest(id), signed); r.Code != http.StatusAccepted {
		t.Fatalf("create: %d %s", r.Code, r.Body)
	}
	// The same build with its commands base64-encoded is the same request.
	same := replayRequest(id)
	delete(same, "buildCommand")
	same["buildCommandB64"] = "bnBtIGNpCm5wbSBydW4gYnVpbGQ="
	if r := h.call("POST", "/v1/builds", same, signed); r.Code != http.StatusAccepted {
		t.Errorf("same request, other encoding: %d %s", r.Code, r.Body)
	}
	other := replayRequest(id)
	other["commitSha"] = commitB
	r := h.call("POST", "/v1/builds", other, signed)
	if r.Code != http.StatusConflict {
		t.Fatalf("different request: %d %s, want 409", r.Code, r.Body)
	}
	if f, _ := r.json(t)["fields"].([]any); len(f) != 1 || f[0] != "buildJobId" {
		t.Errorf("409 names %v, want buildJobId", f)
	}
	if j := h.job(id); j == nil || builderEnv(j)["REPO_REF"] != commitA {
		t.Error("the original Job was replaced or changed")
	}
	h.jobGone(id)
	if r := h.call("POST", "/v1/builds", other, signed); r.Code != http.StatusConflict {
		t.Errorf("different request after the Job is gone: %d %s, want 409", r.Code, r.Body)
	}
	if len(h.jobs()) != 0 {
		t.Error("a conflicting request created a Job")
	}
}

// A canceled build stays canceled: a repeat does not bring it back.
func TestACanceledBuildIsNotStartedAgainByARepeat(t *testing.T) {
	t.Parallel()
	h := start(t, options{})
	const id = "bj-replay-3"
	if r := h.call("POST", "/v1/builds", replayRequest(id), signed); r.Code != http.StatusAccepted {
		t.Fatalf("create: %d %s", r.Code, r.Body)
	}
	if r := h.call("DELETE", "/v1/builds/"+id, nil, signed); r.Code != http.StatusOK {
		t.Fatalf("cancel: %d %s", r.Code, r.Body)
	}
	r := h.call("POST", "/v1/builds", replayRequest(id), signed)
	if got := r.json(t); r.Code != http.StatusAccepted || got["state"] != "canceled" || got["replayed"] != true {
		t.Errorf("repeat after cancel: %d %v", r.Code, got)
	}
	if len(h.jobs()) != 0 {
		t.Error("the canceled build was started again")
	}
}

// A webhook redelivered after its Jobs are gone creates nothing either.
func TestWebhookRedeliveryAfterTheJobsAreGoneCreatesNothing(t *testing.T) {
	t.Parallel()
	h := start(t, options{})
	push := webhooktest.Push{InstallationID: installationID, Owner: owner, Repo: repo, After: commitA,
		Commits: []webhooktest.Commit{{Message: "x", Modified: []string{"apps/web/page.js"}}}}.Payload()
	r := h.deliver("push", "d-replay-1", push)
	if r.Code != http.StatusAccepted {
		t.Fatalf("delivery: %d %s", r.Code, r.Body)
	}
	web := buildsByService(t, r)["web"]
	if web.Status != "queued" || len(h.jobs()) != 1 {
		t.Fatalf("web: %+v, %d jobs", web, len(h.jobs()))
	}
	h.jobGone(web.BuildJobID)
	tokens := len(h.gh.Tokens())

	r = h.deliver("push", "d-replay-1", push)
	if r.Code != http.StatusAccepted {
		t.Fatalf("redelivery: %d %s", r.Code, r.Body)
	}
	again := buildsByService(t, r)["web"]
	if again.BuildJobID != web.BuildJobID || again.Status != "queued" {
		t.Errorf("redelivery: %+v", again)
	}
	if len(h.jobs()) != 0 {
		t.Error("the redelivery created a Job again")
	}
	if n := len(h.gh.Tokens()); n != tokens {
		t.Errorf("the redelivery minted %d tokens", n-tokens)
	}
	if len(h.sink.Received()) != 0 {
		t.Error("the redelivery sent callbacks")
	}
}

// Records are kept for the retention (5 h by default), then pruned by the
// reaper's round; only then would the id build again.
func TestRecordsArePrunedAfterTheRetention(t *testing.T) {
	t.Parallel()
	var offset atomic.Int64
	h := start(t, options{now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }})
	const id = "bj-replay-4"
	if r := h.call("POST", "/v1/builds", replayRequest(id), signed); r.Code != http.StatusAccepted {
		t.Fatalf("create: %d %s", r.Code, r.Body)
	}
	h.jobGone(id)
	offset.Store(int64(4*time.Hour + 30*time.Minute))
	if _, err := h.core.Reap(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.record(id); !ok {
		t.Fatal("the record was pruned within the retention")
	}
	offset.Store(int64(replay.Retention + time.Minute))
	if _, err := h.core.Reap(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rec, ok := h.record(id); ok {
		t.Errorf("the record outlived the retention: %+v", rec)
	}
}
