package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/alternatefutures/af-builder/functions/dispatch/apiauth"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes"
	"github.com/alternatefutures/af-builder/shared/callback"
)

// apiRequest is what service-cloud-api sends today.
func apiRequest(id string) map[string]any {
	return map[string]any{
		"buildJobId":      id,
		"installationId":  installationID,
		"repoOwner":       owner,
		"repoName":        repo,
		"commitSha":       commitA,
		"imageTag":        "ghcr.io/acme/u1--codertocat-hello-world:" + commitA[:12],
		"rootDirectory":   "apps/web",
		"buildCommandB64": base64.StdEncoding.EncodeToString([]byte("npm ci && npm run build")),
		"startCommandB64": base64.StdEncoding.EncodeToString([]byte("npm start")),
	}
}

func TestCreateBuildSubmitsAJobAndAnswersItsName(t *testing.T) {
	t.Parallel()
	h := start(t, options{})
	r := h.call("POST", "/v1/builds", apiRequest("cm9x2k7f30001"), signed)
	if r.Code != http.StatusAccepted {
		t.Fatalf("answer %d: %s", r.Code, r.Body)
	}
	got := r.json(t)
	job := h.job("cm9x2k7f30001")
	if job == nil {
		t.Fatal("no Job")
	}
	if got["jobName"] != job.Name || got["namespace"] != h.ns || got["buildJobId"] != "cm9x2k7f30001" {
		t.Errorf("answer = %v", got)
	}
	if log, _ := got["log"].(string); !strings.Contains(log, job.Name) || !strings.Contains(log, commitA[:12]) {
		t.Errorf("log line = %q", log)
	}
	env := builderEnv(job)
	// Commands travel base64-encoded end to end, so quoting survives.
	if dec(env["BUILD_COMMAND_B64"]) != "npm ci && npm run build" || dec(env["START_COMMAND_B64"]) != "npm start" {
		t.Errorf("commands = %q %q", env["BUILD_COMMAND_B64"], env["START_COMMAND_B64"])
	}
	if job.Labels[kubernetes.LabelTrigger] != "api" {
		t.Errorf("trigger = %q", job.Labels[kubernetes.LabelTrigger])
	}
}

func dec(s string) string {
	b, _ := base64.StdEncoding.DecodeString(s)
	return string(b)
}

func TestSameBuildJobIDTwiceCreatesOneJobAndAnswersTheSame(t *testing.T) {
	t.Parallel()
	h := start(t, options{})
	first := h.call("POST", "/v1/builds", apiRequest("bj-dup"), signed)
	second := h.call("POST", "/v1/builds", apiRequest("bj-dup"), bearer)
	if first.Code != http.StatusAccepted || second.Code != first.Code || !bytes.Equal(first.Body, second.Body) {
		t.Fatalf("first %d %s\nsecond %d %s", first.Code, first.Body, second.Code, second.Body)
	}
	if ids := buildIDs(h.jobs()); len(ids) != 1 {
		t.Errorf("jobs = %v", ids)
	}
}

func TestV1RefusesCallersWithoutTheSecret(t *testing.T) {
	t.Parallel()
	h := start(t, options{})
	body := []byte(`{"buildJobId":"bj-auth"}`)
	req := func(method, path string, mutate func(*http.Request)) *http.Request {
		r, _ := http.NewRequest(method, h.url+path, bytes.NewReader(body))
		mutate(r)
		return r
	}
	signedFor := func(path string, at time.Time, secret []byte) func(*http.Request) {
		return func(r *http.Request) {
			ts := at.Unix()
			r.Header.Set(apiauth.TimestampHeader, strconv.FormatInt(ts, 10))
			r.Header.Set(apiauth.SignatureHeader, apiauth.Signature(secret, ts, r.Method, path, body))
		}
	}
	for name, r := range map[string]*http.Request{
		"no credentials":    req("POST", "/v1/builds", func(*http.Request) {}),
		"wrong bearer":      req("POST", "/v1/builds", func(r *http.Request) { r.Header.Set("Authorization", "Bearer nope") }),
		"wrong secret":      req("POST", "/v1/builds", signedFor("/v1/builds", time.Now(), []byte("other-secret-other-secret-other"))),
		"stale timestamp":   req("POST", "/v1/builds", signedFor("/v1/builds", time.Now().Add(-10*time.Minute), apiSecret)),
		"signed other path": req("DELETE", "/v1/builds/bj-b", signedFor("/v1/builds/bj-a", time.Now(), apiSecret)),
		"GET unsigned":      req("GET", "/v1/builds/bj-a", func(*http.Request) {}),
	} {
		if resp := h.do(r); resp.Code != http.StatusUnauthorized {
			t.Errorf("%s: answer %d %s", name, resp.Code, resp.Body)
		}
	}
	if n := len(h.jobs()) + len(h.gh.Issued()); n != 0 {
		t.Errorf("unauthenticated calls had effects (%d)", n)
	}
}

func TestInvalidRequestNamesTheFields(t *testing.T) {
	t.Parallel()
	h := start(t, options{})
	req := apiRequest("bj-invalid")
	req["commitSha"] = "--upload-pack=evil"
	req["imageTag"] = "ghcr.io/Acme/Web:latest"
	req["rootDirectory"] = "../../etc"
	req["callbackBaseUrl"] = "http://api.example.com"
	r := h.call("POST", "/v1/builds", req, signed)
	if r.Code != http.StatusBadRequest {
		t.Fatalf("answer %d: %s", r.Code, r.Body)
	}
	var fields []string
	for _, f := range r.json(t)["fields"].([]any) {
		fields = append(fields, f.(string))
	}
	slices.Sort(fields)
	if want := []string{"callbackBaseUrl", "commitSha", "imageTag", "rootDirectory"}; !slices.Equal(fields, want) {
		t.Errorf("fields = %v, want %v", fields, want)
	}
	for name, body := range map[string][]byte{
		"not JSON":           []byte(`{"buildJobId":`),
		"installation text":  []byte(`{"buildJobId":"a","installationId":"twelve"}`),
		"missing everything": []byte(`{}`),
	} {
		if r := h.call("POST", "/v1/builds", body, signed); r.Code != http.StatusBadRequest || len(r.json(t)["fields"].([]any)) == 0 {
			t.Errorf("%s: answer %d %s", name, r.Code, r.Body)
		}
	}
	if n := len(h.jobs()) + len(h.gh.Issued()); n != 0 {
		t.Errorf("invalid requests had effects (%d)", n)
	}
}

func TestInstallationIDMayBeAString(t *testing.T) {
	t.Parallel()
	h := start(t, options{})
	req := apiRequest("bj-string-id")
	req["installationId"] = strconv.Itoa(installationID)
	if r := h.call("POST", "/v1/builds", req, signed); r.Code != http.StatusAccepted {
		t.Fatalf("answer %d: %s", r.Code, r.Body)
	}
}

func TestRepositoryOutsideTheInstallationIs422(t *testing.T) {
	t.Parallel()
	h := start(t, options{})
	req := apiRequest("bj-noaccess")
	req["repoName"] = "private-elsewhere"
	r := h.call("POST", "/v1/builds", req, signed)
	if r.Code != http.StatusUnprocessableEntity {
		t.Fatalf("answer %d: %s", r.Code, r.Body)
	}
	if n := len(h.jobs()); n != 0 {
		t.Errorf("%d jobs", n)
	}
}

func TestOversizeAPIBodyIs413(t *testing.T) {
	t.Parallel()
	h := start(t, options{})
	req := apiRequest("bj-big")
	req["padding"] = strings.Repeat("x", 70<<10)
	if r := h.call("POST", "/v1/builds", req, signed); r.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("answer %d: %s", r.Code, r.Body)
	}
}

func TestCallbackBaseURLOverridesTheConfiguredOne(t *testing.T) {
	t.Parallel()
	h := start(t, options{})
	req := apiRequest("bj-cb")
	req["callbackBaseUrl"] = "https://staging-api.example.com/"
	if r := h.call("POST", "/v1/builds", req, signed); r.Code != http.StatusAccepted {
		t.Fatalf("answer %d: %s", r.Code, r.Body)
	}
	if got := builderEnv(h.job("bj-cb"))["CALLBACK_URL"]; got != "https://staging-api.example.com/internal/build-callback" {
		t.Errorf("CALLBACK_URL = %q", got)
	}
}

func TestStatusFollowsTheJob(t *testing.T) {
	t.Parallel()
	h := start(t, options{})
	if r := h.call("GET", "/v1/builds/bj-unknown", nil, signed); r.Code != http.StatusNotFound || r.json(t)["state"] != "not_found" {
		t.Errorf("unknown: %d %s", r.Code, r.Body)
	}
	if r := h.call("POST", "/v1/builds", apiRequest("bj-status"), signed); r.Code != http.StatusAccepted {
		t.Fatalf("create: %d %s", r.Code, r.Body)
	}
	state := func() any { return h.call("GET", "/v1/builds/bj-status", nil, signed).json(t)["state"] }
	if s := state(); s != "pending" {
		t.Errorf("new build: %v", s)
	}
	// No kubelet here: play the Job controller by writing status.
	h.setJobStatus("bj-status", func(st *batchv1.JobStatus) { st.Ready = new(int32); st.Active = 1 })
	if s := state(); s != "running" {
		t.Errorf("a pod whose runner has not reported: %v", s)
	}
	// The runner's readiness probe passes once SUCCEEDED is delivered; what
	// is left is its cache export.
	h.setJobStatus("bj-status", func(st *batchv1.JobStatus) { one := int32(1); st.Ready = &one; st.Active = 1 })
	if s := state(); s != "succeeded" {
		t.Errorf("a ready pod (reported): %v", s)
	}
	if r := h.call("DELETE", "/v1/builds/bj-status", nil, signed); r.Code != http.StatusConflict {
		t.Errorf("cancel of a reported build exporting its cache: %d %s", r.Code, r.Body)
	}
	h.setJobStatus("bj-status", func(st *batchv1.JobStatus) {
		now := metav1.Now()
		st.Active, st.Succeeded, st.Ready = 0, 1, new(int32)
		st.StartTime, st.CompletionTime = &now, &now
		st.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now},
		}
	})
	if s := state(); s != "succeeded" {
		t.Errorf("complete: %v", s)
	}
	// A finished build cannot be canceled any more.
	if r := h.call("DELETE", "/v1/builds/bj-status", nil, signed); r.Code != http.StatusConflict {
		t.Errorf("cancel after success: %d %s", r.Code, r.Body)
	}
	if len(h.sink.Received()) != 0 {
		t.Error("a CANCELED callback was sent for a finished build")
	}
}

func (h *harness) setJobStatus(id string, mutate func(*batchv1.JobStatus)) {
	h.t.Helper()
	job := h.job(id)
	if job == nil {
		h.t.Fatalf("no job for %s", id)
	}
	mutate(&job.Status)
	if _, err := h.kube.BatchV1().Jobs(h.ns).UpdateStatus(context.Background(), job, metav1.UpdateOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

func TestCancelDeletesTheJobAndReportsCanceledFirst(t *testing.T) {
	t.Parallel()
	h := start(t, options{})
	if r := h.call("POST", "/v1/builds", apiRequest("bj-cancel"), signed); r.Code != http.StatusAccepted {
		t.Fatalf("create: %d %s", r.Code, r.Body)
	}
	job := h.job("bj-cancel")
	// The runner's own token, as it would use it on SIGTERM.
	runnerToken := string(h.secret(job.Name).Data["CALLBACK_TOKEN"])

	r := h.call("DELETE", "/v1/builds/bj-cancel", nil, signed)
	if r.Code != http.StatusOK || r.json(t)["state"] != "canceled" || r.json(t)["callback"] != "sent" {
		t.Fatalf("cancel: %d %s", r.Code, r.Body)
	}
	if h.job("bj-cancel") != nil {
		t.Error("the Job is still there")
	}
	if h.secret(job.Name) != nil {
		t.Error("the build's Secret is still there")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	final, err := h.sink.WaitTerminal(ctx, "bj-cancel")
	if err != nil {
		t.Fatal(err)
	}
	if final.Status != "CANCELED" {
		t.Fatalf("final status %s", final.Status)
	}
	if s, ok := h.stateAtCancel("bj-cancel"); !ok || s != "CANCELED" {
		t.Errorf("when the Job was deleted the API held %q (deleted: %v); CANCELED must be stored first", s, ok)
	}

	// The runner, SIGTERMed, reports its own end: it must not win.
	late := callback.New(h.sink.URL(), runnerToken)
	if err := late.Send(ctx, callback.Payload{BuildJobID: "bj-cancel", Status: callback.Failed, ErrorMessage: "terminated"}); err != nil {
		t.Fatal(err)
	}
	if s := h.sink.State("bj-cancel"); s != "CANCELED" {
		t.Errorf("state after the runner's report = %s, want CANCELED kept", s)
	}

	if r := h.call("DELETE", "/v1/builds/bj-cancel", nil, signed); r.Code != http.StatusNotFound {
		t.Errorf("second cancel: %d %s", r.Code, r.Body)
	}
	// Its Job is gone; its status is the one dispatch recorded.
	r = h.call("GET", "/v1/builds/bj-cancel", nil, signed)
	if st := r.json(t); r.Code != http.StatusOK || st["state"] != "canceled" || st["replayed"] != true {
		t.Errorf("status after cancel: %d %s, want 200 canceled replayed", r.Code, r.Body)
	}
}

func TestCancelStillStopsTheBuildWhenTheCallbackFails(t *testing.T) {
	t.Parallel()
	h := start(t, options{})
	if r := h.call("POST", "/v1/builds", apiRequest("bj-cb-down"), signed); r.Code != http.StatusAccepted {
		t.Fatalf("create: %d %s", r.Code, r.Body)
	}
	h.sink.AlwaysAnswer(http.StatusServiceUnavailable)
	r := h.call("DELETE", "/v1/builds/bj-cb-down", nil, signed)
	if r.Code != http.StatusOK || r.json(t)["callback"] != "failed" {
		t.Fatalf("cancel: %d %s", r.Code, r.Body)
	}
	if h.job("bj-cb-down") != nil {
		t.Error("the Job is still there")
	}
}
