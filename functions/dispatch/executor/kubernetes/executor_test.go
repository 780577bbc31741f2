package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/alternatefutures/af-builder/functions/dispatch/executor"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes/kubetest"
)

// newTestExecutor returns an executor on a fresh namespace of the shared
// control plane, as the administrator.
func newTestExecutor(t *testing.T) (*Executor, *kubetest.Env, string) {
	t.Helper()
	env := kubetest.Start(t)
	ns := env.Namespace(t)
	cfg := sampleConfig()
	cfg.Namespace = ns
	ex, err := New(env.Kube, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return ex, env, ns
}

func buildWithID(id string) executor.Build {
	b := sampleBuild()
	b.Env.BuildJobID = id
	return b
}

func TestSubmitCreatesJobAndOwnedSecret(t *testing.T) {
	t.Parallel()
	ex, env, ns := newTestExecutor(t)
	ctx := context.Background()
	b := sampleBuild()

	h, err := ex.Submit(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Created || h.Namespace != ns || h.Name != JobName(b.Env.BuildJobID) {
		t.Fatalf("handle = %+v", h)
	}

	job, err := env.Kube.BatchV1().Jobs(ns).Get(ctx, h.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	secret, err := env.Kube.CoreV1().Secrets(ns).Get(ctx, h.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("no secret value anywhere in the stored Job", func(t *testing.T) {
		raw, _ := json.Marshal(job)
		for _, s := range secretValues(b) {
			if strings.Contains(string(raw), s) {
				t.Fatal("the Job as stored by the API server contains a secret value")
			}
		}
	})

	t.Run("every secret var comes from the Secret", func(t *testing.T) {
		env := map[string]corev1.EnvVar{}
		for _, e := range job.Spec.Template.Spec.Containers[0].Env {
			env[e.Name] = e
		}
		for _, v := range b.Env.Vars() {
			e := env[v.Name]
			if !v.Secret {
				if v.Name != "DOCKER_HOST" && e.Value != v.Value {
					t.Errorf("%s = %q, want %q", v.Name, e.Value, v.Value)
				}
				continue
			}
			if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil ||
				e.ValueFrom.SecretKeyRef.Name != secret.Name || e.ValueFrom.SecretKeyRef.Key != v.Name {
				t.Errorf("%s is not a secretKeyRef to %s/%s: %+v", v.Name, secret.Name, v.Name, e)
			}
			if got := string(secret.Data[v.Name]); got != v.Value {
				t.Errorf("Secret key %s holds the wrong value", v.Name)
			}
		}
		if len(secret.Data) != 3 {
			t.Errorf("Secret has %d keys, want only the 3 secret vars: %v", len(secret.Data), sortedKeys(secret.Data))
		}
		if secret.Immutable == nil || !*secret.Immutable {
			t.Error("Secret should be immutable")
		}
	})

	t.Run("the Secret is owned by the Job", func(t *testing.T) {
		refs := secret.OwnerReferences
		if len(refs) != 1 {
			t.Fatalf("ownerReferences = %+v", refs)
		}
		r := refs[0]
		if r.UID != job.UID || r.Kind != "Job" || r.APIVersion != "batch/v1" || r.Name != job.Name || r.Controller == nil || !*r.Controller {
			t.Errorf("ownerReference %+v does not point at Job %s (uid %s)", r, job.Name, job.UID)
		}
	})

	t.Run("the API server kept the spec", func(t *testing.T) {
		pod := job.Spec.Template.Spec
		if *job.Spec.BackoffLimit != 0 || job.Spec.ActiveDeadlineSeconds == nil || job.Spec.TTLSecondsAfterFinished == nil {
			t.Errorf("job spec = %+v", job.Spec)
		}
		if *pod.AutomountServiceAccountToken || *pod.EnableServiceLinks {
			t.Error("token or service links enabled")
		}
		dind := pod.InitContainers[0]
		if dind.RestartPolicy == nil || *dind.RestartPolicy != corev1.ContainerRestartPolicyAlways || !*dind.SecurityContext.Privileged {
			t.Errorf("dind sidecar = %+v", dind)
		}
		if job.Labels[LabelBuildID] != b.Env.BuildJobID || job.Annotations[LabelBranch] != b.Branch {
			t.Errorf("labels %v annotations %v", job.Labels, job.Annotations)
		}
	})
}

func TestDuplicateSubmitIsAnsweredFromTheFirst(t *testing.T) {
	t.Parallel()
	ex, env, ns := newTestExecutor(t)
	ctx := context.Background()
	first := sampleBuild()
	h1, err := ex.Submit(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	before, err := env.Kube.CoreV1().Secrets(ns).Get(ctx, h1.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// A redelivered webhook mints fresh credentials; they must not replace
	// the ones the first build may already be using.
	again := sampleBuild()
	again.Env.CallbackToken = "bmV3LXRva2Vu.bmV3LXNpZ25hdHVyZQ"
	again.Env.RegistryToken = "ghp_AnotherTokenFromTheRedelivery0000000"
	h2, err := ex.Submit(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	if h2.Created || h2.Name != h1.Name || h2.Namespace != h1.Namespace {
		t.Fatalf("duplicate handle = %+v, want the first's with Created=false", h2)
	}

	assertOneJobAndSecret(t, env.Kube, ns, first.Env.BuildJobID)
	after, err := env.Kube.CoreV1().Secrets(ns).Get(ctx, h1.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != before.ResourceVersion || string(after.Data["GHCR_TOKEN"]) != sampleRegistryToken ||
		string(after.Data["CALLBACK_TOKEN"]) != sampleCallbackToken {
		t.Error("the duplicate Submit changed the first build's Secret")
	}
}

func TestConcurrentDuplicateSubmitsCreateOneBuild(t *testing.T) {
	t.Parallel()
	ex, env, ns := newTestExecutor(t)
	const n = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
		errs    []error
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := ex.Submit(context.Background(), sampleBuild())
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			} else if h.Created {
				created++
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("concurrent submits failed: %v", errs)
	}
	if created != 1 {
		t.Errorf("%d of %d submits report Created, want exactly 1", created, n)
	}
	assertOneJobAndSecret(t, env.Kube, ns, sampleBuild().Env.BuildJobID)
}

func assertOneJobAndSecret(t *testing.T, kube k8s.Interface, ns, id string) {
	t.Helper()
	ctx := context.Background()
	sel := metav1.ListOptions{LabelSelector: LabelBuildID + "=" + LabelValue(id)}
	jobs, err := kube.BatchV1().Jobs(ns).List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	secrets, err := kube.CoreV1().Secrets(ns).List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs.Items) != 1 || len(secrets.Items) != 1 {
		t.Fatalf("build %s has %d jobs and %d secrets, want 1 and 1", id, len(jobs.Items), len(secrets.Items))
	}
	if !ownedBy(&secrets.Items[0], jobs.Items[0].UID) {
		t.Errorf("the Secret is not owned by the Job")
	}
}

func TestResubmitRestoresAMissingSecret(t *testing.T) {
	t.Parallel()
	ex, env, ns := newTestExecutor(t)
	ctx := context.Background()
	h, err := ex.Submit(ctx, sampleBuild())
	if err != nil {
		t.Fatal(err)
	}
	// As after a Submit whose Secret create failed and whose rollback failed too.
	if err := env.Kube.CoreV1().Secrets(ns).Delete(ctx, h.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h2, err := ex.Submit(ctx, sampleBuild())
	if err != nil {
		t.Fatal(err)
	}
	if h2.Created {
		t.Error("the Job already existed; Created should be false")
	}
	assertOneJobAndSecret(t, env.Kube, ns, sampleBuild().Env.BuildJobID)
}

func TestSubmitReplacesAStaleSecretOfAnEarlierJob(t *testing.T) {
	t.Parallel()
	ex, env, ns := newTestExecutor(t)
	ctx := context.Background()
	_, stale, err := Render(ex.cfg, sampleBuild())
	if err != nil {
		t.Fatal(err)
	}
	stale.Namespace = ns
	stale.Data["GHCR_TOKEN"] = []byte("stale")
	stale.OwnerReferences = []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: stale.Name, UID: "0a0a0a0a-dead-beef-0000-000000000000"}}
	if _, err := env.Kube.CoreV1().Secrets(ns).Create(ctx, stale, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ex.Submit(ctx, sampleBuild()); err != nil {
		t.Fatal(err)
	}
	assertOneJobAndSecret(t, env.Kube, ns, sampleBuild().Env.BuildJobID)
	s, err := env.Kube.CoreV1().Secrets(ns).Get(ctx, stale.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(s.Data["GHCR_TOKEN"]) != sampleRegistryToken {
		t.Error("the stale Secret's credentials survived")
	}
}

func TestSubmitRemovesTheJobWhenTheSecretCannotBeCreated(t *testing.T) {
	t.Parallel()
	env := kubetest.Start(t)
	ns := env.Namespace(t)
	ctx := context.Background()
	// An identity that may manage Jobs (as dispatch's Role, infra/k8s) but
	// not Secrets: the Job create succeeds, the Secret create is forbidden.
	env.Create(t,
		&rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "jobs-only", Namespace: ns},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{"batch"}, Resources: []string{"jobs"},
				Verbs: []string{"create", "get", "list", "delete", "patch"}}},
		},
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "jobs-only", Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "jobs-only"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "jobs-only", Namespace: ns}},
		},
	)
	kube, err := k8s.NewForConfig(env.ServiceAccountConfig(t, ns, "jobs-only"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := sampleConfig()
	cfg.Namespace = ns
	ex, err := New(kube, cfg)
	if err != nil {
		t.Fatal(err)
	}

	_, err = ex.Submit(ctx, sampleBuild())
	if err == nil || !apierrors.IsForbidden(err) {
		t.Fatalf("Submit = %v, want a wrapped Forbidden from the Secret create", err)
	}
	ex.Wait() // the rollback runs after the answer
	for _, s := range secretValues(sampleBuild()) {
		if strings.Contains(err.Error(), s) {
			t.Fatalf("error reveals a secret: %v", err)
		}
	}
	jobs, err := env.Kube.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs.Items) != 0 {
		t.Errorf("a Job without its Secret was left behind: %s", jobs.Items[0].Name)
	}
}

func TestSubmitRejectsAJobOfAnotherBuildUnderTheSameName(t *testing.T) {
	t.Parallel()
	ex, env, ns := newTestExecutor(t)
	ctx := context.Background()
	job, _, err := Render(ex.cfg, sampleBuild())
	if err != nil {
		t.Fatal(err)
	}
	job.Namespace = ns
	job.Annotations[LabelBuildID] = "someone-else"
	if _, err := env.Kube.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ex.Submit(ctx, sampleBuild()); err == nil || !strings.Contains(err.Error(), "belongs to build") {
		t.Fatalf("Submit = %v, want a refusal", err)
	}
	if _, err := env.Kube.CoreV1().Secrets(ns).Get(ctx, job.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a Secret was created for a Job that is not ours (err=%v)", err)
	}
}

func TestCancelRemovesJobAndSecret(t *testing.T) {
	t.Parallel()
	ex, env, ns := newTestExecutor(t)
	ctx := context.Background()
	b := sampleBuild()
	h, err := ex.Submit(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.Cancel(ctx, b.Env.BuildJobID); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Kube.BatchV1().Jobs(ns).Get(ctx, h.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Job still there after Cancel (err=%v)", err)
	}
	if _, err := env.Kube.CoreV1().Secrets(ns).Get(ctx, h.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Secret still there after Cancel (err=%v)", err)
	}
	if st, err := ex.Status(ctx, b.Env.BuildJobID); err != nil || st != executor.StateNotFound {
		t.Errorf("Status after Cancel = %s, %v", st, err)
	}
	if err := ex.Cancel(ctx, b.Env.BuildJobID); !errors.Is(err, executor.ErrNotFound) {
		t.Errorf("second Cancel = %v, want ErrNotFound", err)
	}
	if err := ex.Cancel(ctx, "never-submitted"); !errors.Is(err, executor.ErrNotFound) {
		t.Errorf("Cancel of an unknown build = %v, want ErrNotFound", err)
	}
}

func TestCancelRemovesASecretLeftWithoutItsJob(t *testing.T) {
	t.Parallel()
	ex, env, ns := newTestExecutor(t)
	ctx := context.Background()
	h, err := ex.Submit(ctx, sampleBuild())
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Kube.BatchV1().Jobs(ns).Delete(ctx, h.Name, metav1.DeleteOptions{PropagationPolicy: ptr(metav1.DeletePropagationBackground)}); err != nil {
		t.Fatal(err)
	}
	if err := ex.Cancel(ctx, sampleBuild().Env.BuildJobID); err != nil {
		t.Fatalf("Cancel = %v; the Secret alone still counts as the build", err)
	}
	if _, err := env.Kube.CoreV1().Secrets(ns).Get(ctx, h.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Secret still there (err=%v)", err)
	}
}

// The Job controller is not running; these status writes are what it would
// do, in the order it does them (the API server validates the transitions).
// setRunning is a Job whose pod runs and whose runner has not reported:
// not ready (the runner's readiness probe waits for the report).
func setRunning(t *testing.T, kube k8s.Interface, ns, name string) {
	t.Helper()
	updateJobStatus(t, kube, ns, name, func(s *batchv1.JobStatus) {
		keepStartTime(s)
		s.Active = 1
		s.Ready = ptr(int32(0))
		s.Terminating = ptr(int32(0))
	})
}

// setReported is a Job whose runner delivered SUCCEEDED and is exporting
// the cache: its pod is ready.
func setReported(t *testing.T, kube k8s.Interface, ns, name string) {
	t.Helper()
	updateJobStatus(t, kube, ns, name, func(s *batchv1.JobStatus) {
		keepStartTime(s)
		s.Active = 1
		s.Ready = ptr(int32(1))
		s.Terminating = ptr(int32(0))
	})
}

// keepStartTime sets the start time once, as the controller does: the API
// server refuses to change it on a running Job (and two writes a second
// apart would).
func keepStartTime(s *batchv1.JobStatus) {
	if s.StartTime == nil {
		now := metav1.Now()
		s.StartTime = &now
	}
}

func setFinished(t *testing.T, kube k8s.Interface, ns, name string, succeeded bool) {
	t.Helper()
	if succeeded {
		setEnded(t, kube, ns, name, "")
	} else {
		setEnded(t, kube, ns, name, batchv1.JobReasonBackoffLimitExceeded)
	}
}

// setEnded sets the status the Job controller gives a Job that completed
// (failedBy empty) or failed for the reason failedBy.
func setEnded(t *testing.T, kube k8s.Interface, ns, name, failedBy string) {
	t.Helper()
	succeeded := failedBy == ""
	updateJobStatus(t, kube, ns, name, func(s *batchv1.JobStatus) {
		now := metav1.Now()
		keepStartTime(s)
		s.Active, s.Ready, s.Terminating = 0, ptr(int32(0)), ptr(int32(0))
		cond := func(tp batchv1.JobConditionType, reason string) batchv1.JobCondition {
			return batchv1.JobCondition{Type: tp, Status: corev1.ConditionTrue, Reason: reason, LastProbeTime: now, LastTransitionTime: now}
		}
		if succeeded {
			s.Succeeded = 1
			s.CompletionTime = &now
			s.Conditions = append(s.Conditions, cond(batchv1.JobSuccessCriteriaMet, "CompletionsReached"), cond(batchv1.JobComplete, "CompletionsReached"))
		} else {
			s.Failed = 1
			s.Conditions = append(s.Conditions, cond(batchv1.JobFailureTarget, failedBy), cond(batchv1.JobFailed, failedBy))
		}
	})
}

func updateJobStatus(t *testing.T, kube k8s.Interface, ns, name string, mutate func(*batchv1.JobStatus)) {
	t.Helper()
	ctx := context.Background()
	job, err := kube.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mutate(&job.Status)
	if _, err := kube.BatchV1().Jobs(ns).UpdateStatus(ctx, job, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update status of %s: %v", name, err)
	}
}

func TestStatusFollowsTheJob(t *testing.T) {
	t.Parallel()
	ex, env, ns := newTestExecutor(t)
	ctx := context.Background()
	status := func(id string) executor.State {
		t.Helper()
		st, err := ex.Status(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}

	ok, bad := buildWithID("build-ok"), buildWithID("build-bad")
	for _, b := range []executor.Build{ok, bad} {
		if _, err := ex.Submit(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	okName, badName := JobName("build-ok"), JobName("build-bad")

	if got := status("build-ok"); got != executor.StatePending {
		t.Errorf("fresh Job: %s, want pending", got)
	}
	setRunning(t, env.Kube, ns, okName)
	if got := status("build-ok"); got != executor.StateRunning {
		t.Errorf("a pod whose runner has not reported: %s, want running", got)
	}
	setReported(t, env.Kube, ns, okName)
	if got := status("build-ok"); got != executor.StateSucceeded {
		t.Errorf("a ready pod (SUCCEEDED delivered, cache export left): %s, want succeeded", got)
	}
	setFinished(t, env.Kube, ns, okName, true)
	if got := status("build-ok"); got != executor.StateSucceeded {
		t.Errorf("complete Job: %s, want succeeded", got)
	}

	setRunning(t, env.Kube, ns, badName)
	setFinished(t, env.Kube, ns, badName, false)
	if got := status("build-bad"); got != executor.StateFailed {
		t.Errorf("failed Job: %s, want failed", got)
	}

	if got := status("never-submitted"); got != executor.StateNotFound {
		t.Errorf("unknown build: %s, want not_found", got)
	}
}

func TestActiveListsUnfinishedBuildsOfOneServiceAndBranch(t *testing.T) {
	t.Parallel()
	ex, env, ns := newTestExecutor(t)
	ctx := context.Background()
	submit := func(id, service, branch string) {
		t.Helper()
		b := buildWithID(id)
		b.ServiceID, b.Branch = service, branch
		if _, err := ex.Submit(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	// "z" sorts after "a-main-2" by name: only its age can put it first.
	// Creation timestamps have one-second resolution, hence the pause.
	submit("z-main-oldest", "svc-a", "main")
	time.Sleep(1100 * time.Millisecond)
	submit("a-main-2", "svc-a", "main")
	submit("a-main-done", "svc-a", "main")
	submit("a-main-reported", "svc-a", "main")
	submit("a-dev", "svc-a", "dev")
	submit("b-main", "svc-b", "main")
	submit("a-slash", "svc-a", "feature/login")
	submit("a-dash", "svc-a", "feature-login")
	submit("a-nobranch", "svc-a", "")
	submit("nobody", "", "main")
	setFinished(t, env.Kube, ns, JobName("a-main-done"), true)
	// Reported SUCCEEDED, exporting its cache: superseding it would send a
	// second terminal status.
	setReported(t, env.Kube, ns, JobName("a-main-reported"))

	active := func(service, branch string) []string {
		t.Helper()
		ids, err := ex.Active(ctx, service, branch)
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	for _, tc := range []struct {
		service, branch string
		want            []string
	}{
		{"svc-a", "main", []string{"z-main-oldest", "a-main-2"}},
		{"svc-a", "dev", []string{"a-dev"}},
		{"svc-b", "main", []string{"b-main"}},
		{"svc-a", "feature/login", []string{"a-slash"}},
		{"svc-a", "feature-login", []string{"a-dash"}},
		{"svc-a", "", []string{"a-nobranch"}},
		{"svc-c", "main", nil},
		{"", "main", nil},
	} {
		if got := active(tc.service, tc.branch); !slices.Equal(got, tc.want) {
			t.Errorf("Active(%q, %q) = %v, want %v", tc.service, tc.branch, got, tc.want)
		}
	}

	if err := ex.Cancel(ctx, "z-main-oldest"); err != nil {
		t.Fatal(err)
	}
	if got := active("svc-a", "main"); !slices.Equal(got, []string{"a-main-2"}) {
		t.Errorf("after canceling z-main-oldest: %v", got)
	}
}

func TestInvalidBuildIDsNeverReachTheAPI(t *testing.T) {
	t.Parallel()
	// A nil clientset would panic on any request.
	ex, err := New(nil, sampleConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, id := range []string{"", "../x", "a b", strings.Repeat("x", 129)} {
		if err := ex.Cancel(ctx, id); err == nil {
			t.Errorf("Cancel(%q) accepted", id)
		}
		if _, err := ex.Status(ctx, id); err == nil {
			t.Errorf("Status(%q) accepted", id)
		}
	}
	b := sampleBuild()
	b.Env.BuildJobID = "bad id"
	if _, err := ex.Submit(ctx, b); err == nil {
		t.Error("Submit accepted an invalid build")
	}
}

func TestSubmitHonoursCancellation(t *testing.T) {
	t.Parallel()
	ex, env, ns := newTestExecutor(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ex.Submit(ctx, sampleBuild()); !errors.Is(err, context.Canceled) {
		t.Fatalf("Submit on a canceled context = %v", err)
	}
	jobs, _ := env.Kube.BatchV1().Jobs(ns).List(context.Background(), metav1.ListOptions{})
	secrets, _ := env.Kube.CoreV1().Secrets(ns).List(context.Background(), metav1.ListOptions{})
	if len(jobs.Items)+len(secrets.Items) != 0 {
		t.Errorf("a canceled Submit left %d jobs and %d secrets", len(jobs.Items), len(secrets.Items))
	}
}

// The caller giving up between the Job and the Secret (a client disconnect,
// the Lambda deadline) must not leave a Job that waits for a Secret forever.
func TestSubmitCanceledMidwayLeavesNothingBehind(t *testing.T) {
	t.Parallel()
	env := kubetest.Start(t)
	ns := env.Namespace(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	rc := rest.CopyConfig(env.Config)
	rc.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/secrets") {
				cancel()
				return nil, req.Context().Err()
			}
			return rt.RoundTrip(req)
		})
	}
	kube, err := k8s.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := sampleConfig()
	cfg.Namespace = ns
	ex, err := New(kube, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ex.Submit(ctx, sampleBuild()); !errors.Is(err, context.Canceled) {
		t.Fatalf("Submit = %v, want context.Canceled", err)
	}
	ex.Wait() // the rollback runs after the answer
	assertGone(t, env.Kube, ns, JobName(sampleBuild().Env.BuildJobID))
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
