package builds_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/alternatefutures/af-builder/functions/dispatch/builds"
	"github.com/alternatefutures/af-builder/functions/dispatch/dispatchtest"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes/kubetest"
	"github.com/alternatefutures/af-builder/internal/testinfra/callbacksink"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestReapReportsAnOOMKilledBuildFailedExactlyOnce(t *testing.T) {
	t.Parallel()
	w := dispatchtest.Start(t)
	c := core(t, w, w.Executor(t, nil), true)
	ctx := context.Background()
	const id = "cm9x2k7f3oom1"
	if _, err := c.Start(ctx, request(id), "api"); err != nil {
		t.Fatal(err)
	}
	job, err := w.Client.BatchV1().Jobs(w.Namespace).Get(ctx, kubernetes.JobName(id), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.Kube.PodOf(t, job, kubetest.Terminated(kubernetes.BuilderContainer, 137, "OOMKilled"))

	n, err := c.Reap(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Reap = %d, %v; want 1 reported", n, err)
	}
	ds := w.Sink.Deliveries(id)
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
	noLogs(t, d)

	if n, err := c.Reap(ctx); err != nil || n != 0 {
		t.Errorf("second Reap = %d, %v; want nothing", n, err)
	}
	if got := len(w.Sink.Deliveries(id)); got != 1 {
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

func (l *lostOnce) Superseded(context.Context) ([]executor.Stale, error) { return nil, nil }

func TestReapReportsToTheAPITheBuildReportedTo(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	sink := func() *callbacksink.Sink {
		s, err := callbacksink.Start(ctx, callbacksink.Options{Secret: []byte(dispatchtest.CallbackSecret)})
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
	c := builds.New(builds.Config{
		CallbackSecret:  []byte(dispatchtest.CallbackSecret),
		CallbackURL:     strings.TrimSuffix(configured.URL(), callbacksink.Path),
		CallbackTimeout: 3 * time.Second,
	}, builds.Deps{Executor: exec})

	if n, err := c.Reap(ctx); n != 2 || err != nil {
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

// The runner reports RUNNING with its log tail; dispatch's own FAILED for
// a build whose runner was then killed must not replace that tail, and
// the API (as service-cloud-api stores logs) still shows it.
func TestAReapedBuildKeepsTheLogItsRunnerSent(t *testing.T) {
	t.Parallel()
	w := dispatchtest.Start(t)
	c := core(t, w, w.Executor(t, nil), true)
	ctx := context.Background()
	const id = "cm9x2k7f3keep1"
	if _, err := c.Start(ctx, request(id), "api"); err != nil {
		t.Fatal(err)
	}
	tail := "step 1/3: npm ci\nstep 2/3: npm run build\n"
	if code, err := w.Sink.Post(ctx, id, "RUNNING", &tail); err != nil || code != 200 {
		t.Fatalf("RUNNING: %d, %v", code, err)
	}
	job, err := w.Client.BatchV1().Jobs(w.Namespace).Get(ctx, kubernetes.JobName(id), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.Kube.PodOf(t, job, kubetest.Terminated(kubernetes.BuilderContainer, 137, "OOMKilled"))
	if n, err := c.Reap(ctx); err != nil || n != 1 {
		t.Fatalf("Reap = %d, %v", n, err)
	}
	if got := w.Sink.Logs(id); got != "step 1/3: npm ci\nstep 2/3: npm run build\n" {
		t.Errorf("stored log after the reaper's FAILED = %q, want the runner's tail", got)
	}
	if w.Sink.State(id) != "FAILED" {
		t.Errorf("state = %s", w.Sink.State(id))
	}
}

// A push whose supersede did not happen in its own time (the webhook's
// budget ran out, the API server was slow) leaves two unfinished builds of
// one service and branch. The reaper's round cancels the older one.
func TestReapCancelsWhatSupersedeLeftBehind(t *testing.T) {
	t.Parallel()
	w := dispatchtest.Start(t)
	exec := w.Executor(t, nil)
	c := core(t, w, exec, true)
	ctx := context.Background()
	t0 := time.Now().Add(-time.Minute).Truncate(time.Second)
	// Submitted straight to the executor: nothing superseded anything.
	for i, id := range []string{"gh-old-1", "gh-new-1"} {
		r := pushRequest(id, t0.Add(time.Duration(i)*time.Second))
		env, err := r.Env(c.Params())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := exec.Submit(ctx, r.Build(env, "push")); err != nil {
			t.Fatal(err)
		}
	}
	// Another service and an API build without one stay alone.
	other := pushRequest("gh-docs-1", t0)
	other.ServiceID = "docs"
	if _, err := c.Start(ctx, other, "push"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Start(ctx, request("cm-lone-1"), "api"); err != nil {
		t.Fatal(err)
	}

	if _, err := c.Reap(ctx); err != nil {
		t.Fatal(err)
	}
	d, ok := w.Sink.Terminal("gh-old-1")
	if !ok || d.Status != "CANCELED" || !strings.Contains(d.Payload["errorMessage"].(string), "superseded by build gh-new-1") {
		t.Fatalf("older build: %+v, want CANCELED superseded by gh-new-1", d)
	}
	noLogs(t, d)
	if st, _ := exec.Status(ctx, "gh-old-1"); st != executor.StateNotFound {
		t.Errorf("older build's Job is %s, want deleted", st)
	}
	for _, id := range []string{"gh-new-1", "gh-docs-1", "cm-lone-1"} {
		if st, _ := exec.Status(ctx, id); st != executor.StatePending {
			t.Errorf("%s is %s, want left pending", id, st)
		}
		if len(w.Sink.Deliveries(id)) != 0 {
			t.Errorf("%s got a callback", id)
		}
	}
}

// With supersede off, the reaper leaves a branch's builds alone.
func TestReapDoesNotSupersedeWhenSupersedeIsOff(t *testing.T) {
	t.Parallel()
	w := dispatchtest.Start(t)
	exec := w.Executor(t, nil)
	c := core(t, w, exec, false)
	ctx := context.Background()
	t0 := time.Now().Add(-time.Minute).Truncate(time.Second)
	for i, id := range []string{"gh-old-2", "gh-new-2"} {
		if _, err := c.Start(ctx, pushRequest(id, t0.Add(time.Duration(i)*time.Second)), "push"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Reap(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := exec.Status(ctx, "gh-old-2"); st != executor.StatePending {
		t.Errorf("older build is %s, want left alone", st)
	}
}
