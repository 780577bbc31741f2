package kubernetes

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/alternatefutures/af-builder/functions/dispatch/executor"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes/kubetest"
)

// faultyClient is a client whose Secret creates wait for release, then
// fail as an overloaded API server's would.
func faultyClient(t *testing.T, env *kubetest.Env, arrived chan<- struct{}, release <-chan struct{}) k8s.Interface {
	t.Helper()
	var once sync.Once
	return clientWith(t, env, -1, 0, func(req *http.Request) error {
		if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/secrets") {
			once.Do(func() { close(arrived) })
			<-release
			return errors.New("connection reset by peer (injected)")
		}
		return nil
	})
}

// clientWith is a client of env's API server, limited to qps and burst,
// that shows every request to hook first: an error from hook is the
// request's outcome, and it never reaches the server.
func clientWith(t *testing.T, env *kubetest.Env, qps float32, burst int, hook func(*http.Request) error) k8s.Interface {
	t.Helper()
	rc := rest.CopyConfig(env.Config)
	rc.QPS, rc.Burst = qps, burst
	rc.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if err := hook(req); err != nil {
				return nil, err
			}
			return rt.RoundTrip(req)
		})
	}
	kube, err := k8s.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return kube
}

// Request A creates the Job; its duplicate B finds it, stores the Secret and
// answers queued; then A's own Secret create fails. The build B reported
// must still be there and runnable (issue 13, point 8: A's rollback used to
// delete it).
func TestAFailedDuplicateNeverRemovesABuildAnotherReportedQueued(t *testing.T) {
	t.Parallel()
	env := kubetest.Start(t)
	ns := env.Namespace(t)
	ctx := context.Background()
	cfg := sampleConfig()
	cfg.Namespace = ns
	arrived, release := make(chan struct{}), make(chan struct{})
	a, err := New(faultyClient(t, env, arrived, release), cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(env.Kube, cfg)
	if err != nil {
		t.Fatal(err)
	}

	aErr := make(chan error, 1)
	go func() {
		_, err := a.Submit(ctx, sampleBuild())
		aErr <- err
	}()
	<-arrived // A has created the Job and is storing the Secret
	h, err := b.Submit(ctx, sampleBuild())
	if err != nil || h.Created {
		t.Fatalf("duplicate B = %+v, %v; want it to find A's build and succeed", h, err)
	}
	close(release)
	if err := <-aErr; err == nil {
		t.Fatal("A's Secret create was made to fail, yet A reported success")
	}
	a.Wait()

	assertOneJobAndSecret(t, env.Kube, ns, sampleBuild().Env.BuildJobID)
	job, err := env.Kube.BatchV1().Jobs(ns).Get(ctx, h.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if suspended(job) {
		t.Error("the build B reported queued is still suspended: it will never run")
	}
}

// Many concurrent Submits of one build, some of them failing at the
// Secret: when any reports success, a released Job with its Secret is
// there afterwards, and there is never more than one Job.
func TestConcurrentDuplicatesWithFailuresLeaveOneRunnableBuild(t *testing.T) {
	t.Parallel()
	env := kubetest.Start(t)
	ns := env.Namespace(t)
	ctx := context.Background()
	cfg := sampleConfig()
	cfg.Namespace = ns
	good, err := New(env.Kube, cfg)
	if err != nil {
		t.Fatal(err)
	}
	const n = 12
	var wg sync.WaitGroup
	var mu sync.Mutex
	succeeded := 0
	var faulty []*Executor
	for i := range n {
		ex := good
		if i%3 == 0 {
			arrived, release := make(chan struct{}), make(chan struct{})
			close(release)
			go func() { <-arrived }()
			ex, err = New(faultyClient(t, env, arrived, release), cfg)
			if err != nil {
				t.Fatal(err)
			}
			faulty = append(faulty, ex)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := ex.Submit(ctx, sampleBuild()); err == nil {
				mu.Lock()
				succeeded++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, ex := range faulty {
		ex.Wait()
	}
	if succeeded == 0 {
		// Every one met a rollback half-way: each answered an error, as
		// it must. The redelivery that follows builds it.
		if _, err := good.Submit(ctx, sampleBuild()); err != nil {
			t.Fatalf("redelivery after the race: %v", err)
		}
	}
	assertOneJobAndSecret(t, env.Kube, ns, sampleBuild().Env.BuildJobID)
	job, err := env.Kube.BatchV1().Jobs(ns).Get(ctx, JobName(sampleBuild().Env.BuildJobID), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if suspended(job) {
		t.Errorf("%d Submits reported success but the Job is suspended", succeeded)
	}
}

// When the Secret step fails on an overloaded client (one waiting in its
// rate limiter), Submit answers by its caller's deadline: the clean-up must
// not hold the answer past it (issue 13, point 7: 12 s answers to GitHub's
// 10 s).
func TestAFailingSubmitAnswersWithinItsDeadline(t *testing.T) {
	t.Parallel()
	env := kubetest.Start(t)
	ns := env.Namespace(t)
	cfg := sampleConfig()
	cfg.Namespace = ns
	// One request a second: the create of the Job passes, everything after
	// waits.
	kube := clientWith(t, env, 1, 1, func(req *http.Request) error {
		if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/secrets") {
			return errors.New("connection reset by peer (injected)")
		}
		return nil
	})
	ex, err := New(kube, cfg)
	if err != nil {
		t.Fatal(err)
	}
	const budget = 1500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	start := time.Now()
	if _, err := ex.Submit(ctx, sampleBuild()); err == nil {
		t.Fatal("Submit succeeded without its Secret")
	}
	if took := time.Since(start); took > budget+250*time.Millisecond {
		t.Errorf("Submit answered after %s, past its %s deadline", took.Round(time.Millisecond), budget)
	}
	ex.Wait()
}

// A supersede (or a cancel) can delete a build's Job while another request
// is still submitting it: between the create and the release, or between a
// duplicate's create and its read. Either Submit says the build is gone
// (executor.ErrGone), so the core answers from its record of the cancel
// instead of asking the caller to retry, and nothing is created again.
func TestABuildDeletedWhileItIsSubmittedIsReportedGone(t *testing.T) {
	t.Parallel()
	env := kubetest.Start(t)
	ns := env.Namespace(t)
	ctx := context.Background()
	cfg := sampleConfig()
	cfg.Namespace = ns
	name := JobName(sampleBuild().Env.BuildJobID)
	var deleted sync.Once
	deleteJob := func() {
		policy := metav1.DeletePropagationBackground
		if err := env.Kube.BatchV1().Jobs(ns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &policy}); err != nil {
			t.Errorf("delete the job: %v", err)
		}
	}

	// Deleted between the create and the release.
	kube := clientWith(t, env, env.Config.QPS, env.Config.Burst, func(req *http.Request) error {
		if req.Method == http.MethodPatch && strings.HasSuffix(req.URL.Path, "/jobs/"+name) {
			deleted.Do(deleteJob)
		}
		return nil
	})
	creator, err := New(kube, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := creator.Submit(ctx, sampleBuild()); !errors.Is(err, executor.ErrGone) {
		t.Errorf("Submit of a build deleted before its release = %v, want ErrGone", err)
	}
	creator.Wait()
	// Let go at once: a Job left for the reaper would be reported FAILED,
	// for a build its Submit answered gone (the platform may send it again).
	if _, err := env.Kube.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the Job deleted before its release is still there (%v)", err)
	}

	// A duplicate that finds the Job while it is being deleted (a
	// finalizer holds it there).
	plain, err := New(env.Kube, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Submit(ctx, sampleBuild()); err != nil {
		t.Fatal(err)
	}
	hold := `{"metadata":{"finalizers":["af-builder.test/hold"]}}`
	if _, err := env.Kube.BatchV1().Jobs(ns).Patch(ctx, name, types.MergePatchType, []byte(hold), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = env.Kube.BatchV1().Jobs(ns).Patch(context.Background(), name, types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
	})
	deleteJob()
	if _, err := plain.Submit(ctx, sampleBuild()); !errors.Is(err, executor.ErrGone) {
		t.Errorf("Submit of a build whose Job is being deleted = %v, want ErrGone", err)
	}
	jobs, err := env.Kube.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs.Items) != 1 || jobs.Items[0].DeletionTimestamp == nil {
		t.Errorf("jobs after the Submits: %d (want only the one being deleted)", len(jobs.Items))
	}
}

// A Submit still holding a Job that a failed duplicate rolled back, after
// another duplicate made the build's new Job and its Secret: the late one
// must leave that Secret alone. Replacing it (as a stale Secret of an
// earlier Job) gave the released build a Secret owned by a Job that no
// longer exists, which the garbage collector deletes under the running
// build.
func TestASubmitWhoseJobWasReplacedLeavesTheNewJobsSecret(t *testing.T) {
	t.Parallel()
	ex, env, ns := newTestExecutor(t)
	current := submitJob(t, ex, env, ns, sampleBuild().Env.BuildJobID)
	rolledBack := current.DeepCopy()
	rolledBack.UID = types.UID("the-job-a-failed-duplicate-rolled-back")
	_, secret, err := Render(ex.cfg, sampleBuild())
	if err != nil {
		t.Fatal(err)
	}

	if err := ex.ensureSecret(context.Background(), rolledBack, secret); !errors.Is(err, executor.ErrGone) {
		t.Errorf("ensureSecret for a replaced Job = %v, want ErrGone", err)
	}
	assertOneJobAndSecret(t, env.Kube, ns, sampleBuild().Env.BuildJobID)
}
