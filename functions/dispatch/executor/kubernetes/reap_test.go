package kubernetes

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/alternatefutures/af-builder/functions/dispatch/executor"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes/kubetest"
	"github.com/alternatefutures/af-builder/shared/contract"
)

// submitJob submits a build and returns its Job as stored.
func submitJob(t *testing.T, ex *Executor, env *kubetest.Env, ns, id string) *batchv1.Job {
	t.Helper()
	ctx := context.Background()
	if _, err := ex.Submit(ctx, buildWithID(id)); err != nil {
		t.Fatal(err)
	}
	job, err := env.Kube.BatchV1().Jobs(ns).Get(ctx, JobName(id), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return job
}

func reap(t *testing.T, ex *Executor) []executor.Lost {
	t.Helper()
	lost, err := ex.Reap(context.Background())
	if err != nil {
		t.Fatalf("Reap: %v", err)
	}
	return lost
}

func reaped(t *testing.T, env *kubetest.Env, ns, id string) bool {
	t.Helper()
	job, err := env.Kube.BatchV1().Jobs(ns).Get(context.Background(), JobName(id), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return job.Annotations[AnnotationReaped] != ""
}

func TestReapReportsAnOOMKilledBuildOnce(t *testing.T) {
	t.Parallel()
	ex, env, ns := newTestExecutor(t)
	job := submitJob(t, ex, env, ns, "oom-1")
	env.PodOf(t, job, kubetest.Terminated(BuilderContainer, 137, "OOMKilled"))

	lost := reap(t, ex)
	if len(lost) != 1 || lost[0].BuildJobID != "oom-1" {
		t.Fatalf("Reap = %+v, want oom-1", lost)
	}
	if want := "the build container was killed: OOMKilled (exit 137) — raise the builder memory limit or reduce the build's memory use"; lost[0].Reason != want {
		t.Errorf("Reason = %q, want %q", lost[0].Reason, want)
	}
	if lost[0].CallbackURL != sampleBuild().Env.CallbackURL {
		t.Errorf("CallbackURL = %q, want the runner's own %q", lost[0].CallbackURL, sampleBuild().Env.CallbackURL)
	}
	if !reaped(t, env, ns, "oom-1") {
		t.Errorf("the Job is not annotated %s", AnnotationReaped)
	}
	if again := reap(t, ex); len(again) != 0 {
		t.Errorf("second Reap = %+v, want nothing: each lost build is reported once", again)
	}
}

func TestReapLeavesBuildsWhoseRunnerReported(t *testing.T) {
	t.Parallel()
	ex, env, ns := newTestExecutor(t)
	for id, code := range map[string]int32{"failed-1": 1, "badconfig-1": 2} {
		job := submitJob(t, ex, env, ns, id)
		env.PodOf(t, job, kubetest.Terminated(BuilderContainer, code, "Error"))
		setFinished(t, env.Kube, ns, job.Name, false)
	}
	if lost := reap(t, ex); len(lost) != 0 {
		t.Fatalf("Reap = %+v, want nothing: the runner delivered FAILED itself", lost)
	}
	succeeded := submitJob(t, ex, env, ns, "succeeded-1")
	setFinished(t, env.Kube, ns, succeeded.Name, true)
	if lost := reap(t, ex); len(lost) != 0 {
		t.Fatalf("Reap = %+v, want nothing: the runner delivered SUCCEEDED itself", lost)
	}
	for _, id := range []string{"failed-1", "badconfig-1", "succeeded-1"} {
		if !reaped(t, env, ns, id) {
			t.Errorf("%s is not marked, so every Reap would look at it again", id)
		}
		// Finished: its deletion (the TTL, the namespace's) must not wait
		// for dispatch.
		job, err := env.Kube.BatchV1().Jobs(ns).Get(context.Background(), JobName(id), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(job.Finalizers, FinalizerReport) {
			t.Errorf("%s still carries %s once finished", id, FinalizerReport)
		}
	}
}

func TestReapLeavesRunningAndPendingBuilds(t *testing.T) {
	t.Parallel()
	ex, env, ns := newTestExecutor(t)
	submitJob(t, ex, env, ns, "pending-1")
	running := submitJob(t, ex, env, ns, "running-1")
	env.PodOf(t, running, corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
		Name: BuilderContainer, Image: "runner", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}},
	}}})
	setRunning(t, env.Kube, ns, running.Name)
	if lost := reap(t, ex); len(lost) != 0 {
		t.Fatalf("Reap = %+v, want nothing", lost)
	}
	if reaped(t, env, ns, "pending-1") || reaped(t, env, ns, "running-1") {
		t.Error("an unfinished build was marked reaped")
	}
}

func TestReapExplainsEachWayARunnerIsLost(t *testing.T) {
	t.Parallel()
	ex, env, ns := newTestExecutor(t)

	evicted := submitJob(t, ex, env, ns, "evicted-1")
	env.PodOf(t, evicted, corev1.PodStatus{Phase: corev1.PodFailed, Reason: "Evicted",
		Message: "The node was low on resource: ephemeral-storage."})
	setFinished(t, env.Kube, ns, evicted.Name, false)

	undelivered := submitJob(t, ex, env, ns, "exit3-1")
	env.PodOf(t, undelivered, kubetest.Terminated(BuilderContainer, 3, "Error"))

	vanished := submitJob(t, ex, env, ns, "nopod-1")
	setFinished(t, env.Kube, ns, vanished.Name, false)

	deadline := submitJob(t, ex, env, ns, "deadline-1")
	updateJobStatus(t, env.Kube, ns, deadline.Name, startedNow(batchv1.JobFailureTarget, batchv1.JobFailed))

	// The Job controller's state while it stops the pods after the
	// deadline: FailureTarget set, Failed not yet (seen on a real node,
	// where the pod was gone before Failed appeared).
	stopping := submitJob(t, ex, env, ns, "deadline-2")
	updateJobStatus(t, env.Kube, ns, stopping.Name, startedNow(batchv1.JobFailureTarget))

	// A runner that never started (its image never pulled) when the
	// deadline's pod deletion reaches the kubelet: the kill is the
	// deadline's, whether the controller has written its condition yet
	// (deadline-3) or not (deadline-4, past its activeDeadlineSeconds).
	// Seen on a real node: "killed: ContainerStatusUnknown (exit 137)".
	neverStarted := submitJob(t, ex, env, ns, "deadline-3")
	env.PodOf(t, neverStarted, kubetest.Terminated(BuilderContainer, 137, "ContainerStatusUnknown"))
	updateJobStatus(t, env.Kube, ns, neverStarted.Name, startedNow(batchv1.JobFailureTarget))
	beforeCondition := submitJob(t, ex, env, ns, "deadline-4")
	env.PodOf(t, beforeCondition, kubetest.Terminated(BuilderContainer, 137, "ContainerStatusUnknown"))
	updateJobStatus(t, env.Kube, ns, beforeCondition.Name, func(s *batchv1.JobStatus) {
		started := metav1.NewTime(time.Now().Add(-time.Duration(*beforeCondition.Spec.ActiveDeadlineSeconds+1) * time.Second))
		s.StartTime = &started
	})
	// The same kill inside the deadline is no deadline's.
	killed := submitJob(t, ex, env, ns, "killed-1")
	env.PodOf(t, killed, kubetest.Terminated(BuilderContainer, 137, "ContainerStatusUnknown"))
	updateJobStatus(t, env.Kube, ns, killed.Name, startedNow())

	got := map[string]string{}
	for _, l := range reap(t, ex) {
		got[l.BuildJobID] = l.Reason
	}
	want := map[string]string{
		"evicted-1":  "the build pod was evicted: The node was low on resource: ephemeral-storage.",
		"exit3-1":    "the runner could not deliver its terminal status (exit 3)",
		"nopod-1":    "the build pod disappeared (node lost?)",
		"deadline-1": "the build exceeded its deadline",
		"deadline-2": "the build exceeded its deadline",
		"deadline-3": "the build exceeded its deadline",
		"deadline-4": "the build exceeded its deadline",
		"killed-1":   "the build container was killed: ContainerStatusUnknown (exit 137)",
	}
	for id, reason := range want {
		if got[id] != reason {
			t.Errorf("%s: Reason = %q, want %q", id, got[id], reason)
		}
	}
	if len(got) != len(want) {
		t.Errorf("Reap = %v, want exactly %v", got, want)
	}
}

// A build pod whose runner cannot start (its image cannot be pulled, or
// the dind sidecar's) would wait for the Job's deadline, BUILD_TIMEOUT and
// more: after K8S_START_TIMEOUT the reaper reports it FAILED, naming the
// container and the kubelet's reason, and deletes the Job. A pull still
// under way, or a failed one younger than the timeout, is left alone.
func TestReapFailsABuildWhosePodCannotStart(t *testing.T) {
	t.Parallel()
	ex, env, ns := newTestExecutor(t)
	waiting := func(reason, msg string) corev1.ContainerState {
		return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}
	}
	podStarted := func(ago time.Duration, dind, builder corev1.ContainerState) corev1.PodStatus {
		started := metav1.NewTime(time.Now().Add(-ago))
		return corev1.PodStatus{Phase: corev1.PodPending, StartTime: &started,
			InitContainerStatuses: []corev1.ContainerStatus{{Name: DindContainer, Image: "dind", State: dind}},
			ContainerStatuses:     []corev1.ContainerStatus{{Name: BuilderContainer, Image: "runner", State: builder}},
		}
	}
	dindUp := corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}
	old := ex.cfg.StartTimeout + time.Minute
	backOff := waiting("ImagePullBackOff", `Back-off pulling image "ghcr.io/af/runner:absent"`)

	env.PodOf(t, submitJob(t, ex, env, ns, "pull-1"), podStarted(old, dindUp, backOff))
	env.PodOf(t, submitJob(t, ex, env, ns, "sidecar-1"), podStarted(old,
		waiting("ErrImagePull", `pull access denied for docker, repository does not exist`), waiting("PodInitializing", "")))
	env.PodOf(t, submitJob(t, ex, env, ns, "young-1"), podStarted(ex.cfg.StartTimeout-time.Minute, dindUp, backOff))
	env.PodOf(t, submitJob(t, ex, env, ns, "slow-1"), podStarted(old, dindUp, waiting("ContainerCreating", "")))

	got := map[string]string{}
	for _, l := range reap(t, ex) {
		got[l.BuildJobID] = l.Reason
	}
	want := map[string]string{
		"pull-1":    `the build pod could not start its builder container in 5m0s: ImagePullBackOff (Back-off pulling image "ghcr.io/af/runner:absent")`,
		"sidecar-1": `the build pod could not start its dind container in 5m0s: ErrImagePull (pull access denied for docker, repository does not exist)`,
	}
	for id, reason := range want {
		if got[id] != reason {
			t.Errorf("%s: Reason = %q, want %q", id, got[id], reason)
		}
		if !jobGone(t, env, ns, JobName(id)) {
			t.Errorf("%s's Job is still there: its runner could start and report a second time", id)
		}
	}
	if len(got) != len(want) {
		t.Errorf("Reap = %v, want exactly %v", got, want)
	}
	for _, id := range []string{"young-1", "slow-1"} {
		if reaped(t, env, ns, id) {
			t.Errorf("%s was reaped: its pod may still start", id)
		}
	}
	if again := reap(t, ex); len(again) != 0 {
		t.Errorf("second Reap = %+v, want nothing", again)
	}
}

// startedNow is a Job status started now, with the Job controller's
// conditions for a passed deadline (none: the deadline not passed).
func startedNow(deadlineConditions ...batchv1.JobConditionType) func(*batchv1.JobStatus) {
	return func(s *batchv1.JobStatus) {
		now := metav1.Now()
		s.StartTime = &now
		for _, tp := range deadlineConditions {
			s.Conditions = append(s.Conditions, batchv1.JobCondition{Type: tp, Status: corev1.ConditionTrue,
				Reason: batchv1.JobReasonDeadlineExceeded, LastProbeTime: now, LastTransitionTime: now})
		}
	}
}

// A runner that reported and then lost its pod (kubectl delete pod, a node
// drain; the Job deleted too, afterwards) leaves no pod to read its exit
// from; the Job controller wrote it into the Job's Failed condition
// (reportedExitPolicy), and the reaper adds no second terminal status. A
// Job that failed any other way without a pod is still reported.
func TestReapLeavesABuildWhosePodWentAfterItsRunnerReported(t *testing.T) {
	t.Parallel()
	ex, env, ns := newTestExecutor(t)
	drained := submitJob(t, ex, env, ns, "drained-1")
	setEnded(t, env.Kube, ns, drained.Name, batchv1.JobReasonPodFailurePolicy)
	deleted := submitJob(t, ex, env, ns, "deleted-after-1")
	setEnded(t, env.Kube, ns, deleted.Name, batchv1.JobReasonPodFailurePolicy)
	deleteByHand(t, env, ns, deleted)
	vanished := submitJob(t, ex, env, ns, "vanished-1")
	setFinished(t, env.Kube, ns, vanished.Name, false)

	lost := reap(t, ex)
	if len(lost) != 1 || lost[0].BuildJobID != "vanished-1" {
		t.Errorf("Reap = %+v, want only vanished-1: the others' runners exited after reporting", lost)
	}
	if !reaped(t, env, ns, "drained-1") {
		t.Error("drained-1 is not marked: the reaper would look at it again")
	}
	if !jobGone(t, env, ns, deleted.Name) {
		t.Errorf("%s is still held by the finalizer", deleted.Name)
	}
}

// The Job controller can record only the exits after which the runner has
// reported: the policy's codes are exactly contract.RunnerReported's, but
// for 0 (a success completes the Job).
func TestReportedExitPolicyNamesTheRunnersReportedExits(t *testing.T) {
	rules := reportedExitPolicy().Rules
	if len(rules) != 1 || rules[0].Action != batchv1.PodFailurePolicyActionFailJob || rules[0].OnExitCodes == nil ||
		rules[0].OnExitCodes.Operator != batchv1.PodFailurePolicyOnExitCodesOpIn || *rules[0].OnExitCodes.ContainerName != BuilderContainer {
		t.Fatalf("policy %+v, want one FailJob rule on the builder's exit codes", rules)
	}
	for code := range 256 {
		in := slices.Contains(rules[0].OnExitCodes.Values, int32(code))
		if want := code != contract.ExitSucceeded && contract.RunnerReported(code); in != want {
			t.Errorf("exit %d in the policy: %v, want %v", code, in, want)
		}
	}
}

func TestReapIgnoresPodsOfAnEarlierJobOfTheSameBuild(t *testing.T) {
	t.Parallel()
	ex, env, ns := newTestExecutor(t)
	first := submitJob(t, ex, env, ns, "again-1")
	env.PodOf(t, first, kubetest.Terminated(BuilderContainer, 1, "Error"))
	if err := ex.Cancel(context.Background(), "again-1"); err != nil {
		t.Fatal(err)
	}
	// Resubmitted; the old pod lingers (no garbage collector here), and its
	// "reported" exit must not vouch for the new Job, whose pod is gone.
	second := submitJob(t, ex, env, ns, "again-1")
	setFinished(t, env.Kube, ns, second.Name, false)
	lost := reap(t, ex)
	if len(lost) != 1 || !strings.Contains(lost[0].Reason, "disappeared") {
		t.Errorf("Reap = %+v, want again-1 lost with its pod gone", lost)
	}
}

// A runner killed during the cache export that follows SUCCEEDED (a drained
// node, the Job's deadline) left the mark in its termination log: the
// platform has its status, and a FAILED now would be a second one.
func TestReapLeavesARunnerKilledAfterItReported(t *testing.T) {
	t.Parallel()
	ex, env, ns := newTestExecutor(t)
	exporting := submitJob(t, ex, env, ns, "exporting-1")
	st := kubetest.Terminated(BuilderContainer, 137, "Error")
	st.ContainerStatuses[0].State.Terminated.Message = contract.ReportedMark + "\n"
	env.PodOf(t, exporting, st)
	setFinished(t, env.Kube, ns, exporting.Name, false)

	killed := submitJob(t, ex, env, ns, "killed-1")
	env.PodOf(t, killed, kubetest.Terminated(BuilderContainer, 137, "Error"))
	setFinished(t, env.Kube, ns, killed.Name, false)

	lost := reap(t, ex)
	if len(lost) != 1 || lost[0].BuildJobID != "killed-1" {
		t.Errorf("Reap = %+v, want only killed-1 (exporting-1 reported before it was killed)", lost)
	}
}

// deleteByHand deletes a build's Job as kubectl would: background
// propagation, no finalizer removed.
func deleteByHand(t *testing.T, env *kubetest.Env, ns string, job *batchv1.Job) {
	t.Helper()
	err := env.Kube.BatchV1().Jobs(ns).Delete(context.Background(), job.Name, metav1.DeleteOptions{
		PropagationPolicy: ptr(metav1.DeletePropagationBackground),
	})
	if err != nil {
		t.Fatal(err)
	}
}

func jobGone(t *testing.T, env *kubetest.Env, ns, name string) bool {
	t.Helper()
	_, err := env.Kube.BatchV1().Jobs(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return apierrors.IsNotFound(err)
}

// A Job deleted by hand before its runner started leaves nothing that
// would report the build: the reaper does, once, and lets the Job go.
func TestReapReportsABuildWhoseJobWasDeletedBeforeItsRunnerStarted(t *testing.T) {
	t.Parallel()
	ex, env, ns := newTestExecutor(t)
	unscheduled := submitJob(t, ex, env, ns, "deleted-1")
	pulling := submitJob(t, ex, env, ns, "deleted-2")
	env.PodOf(t, pulling, corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{
		Name: BuilderContainer, Image: "runner", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}},
	}}})
	for _, job := range []*batchv1.Job{unscheduled, pulling} {
		deleteByHand(t, env, ns, job)
		if jobGone(t, env, ns, job.Name) {
			t.Fatalf("%s went at once: the finalizer did not hold it for the reaper", job.Name)
		}
	}

	got := map[string]string{}
	for _, l := range reap(t, ex) {
		got[l.BuildJobID] = l.Reason
		if l.CallbackURL != sampleBuild().Env.CallbackURL {
			t.Errorf("%s: CallbackURL = %q, want the runner's own", l.BuildJobID, l.CallbackURL)
		}
	}
	want := "the build's Job was deleted while no runner of it was running"
	if len(got) != 2 || got["deleted-1"] != want || got["deleted-2"] != want {
		t.Errorf("Reap = %v, want deleted-1 and deleted-2: %q", got, want)
	}
	for _, job := range []*batchv1.Job{unscheduled, pulling} {
		if !jobGone(t, env, ns, job.Name) {
			t.Errorf("%s is still there after the reaper reported it", job.Name)
		}
	}
	if again := reap(t, ex); len(again) != 0 {
		t.Errorf("second Reap = %+v, want nothing", again)
	}
}

// A runner that started reports itself when its pod is stopped, which the
// collector does once the Job is gone; one that reported already (the Job
// complete) has nothing left to say. The reaper only lets their Jobs go.
func TestReapLetsADeletedJobGoWhenItsRunnerReportsItself(t *testing.T) {
	t.Parallel()
	ex, env, ns := newTestExecutor(t)
	running := submitJob(t, ex, env, ns, "running-del-1")
	env.PodOf(t, running, corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
		Name: BuilderContainer, Image: "runner", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}},
	}}})
	setRunning(t, env.Kube, ns, running.Name)
	done := submitJob(t, ex, env, ns, "done-del-1")
	setFinished(t, env.Kube, ns, done.Name, true)
	failed := submitJob(t, ex, env, ns, "failed-del-1")
	env.PodOf(t, failed, kubetest.Terminated(BuilderContainer, 1, "Error"))
	setFinished(t, env.Kube, ns, failed.Name, false)

	jobs := []*batchv1.Job{running, done, failed}
	for _, job := range jobs {
		deleteByHand(t, env, ns, job)
	}
	if lost := reap(t, ex); len(lost) != 0 {
		t.Errorf("Reap = %+v, want nothing: each runner reports, or did, itself", lost)
	}
	for _, job := range jobs {
		if !jobGone(t, env, ns, job.Name) {
			t.Errorf("%s is still held by the finalizer", job.Name)
		}
	}
}

// Dispatch's own deletes never wait for the reaper: Cancel has reported.
func TestCancelDoesNotWaitForTheReaper(t *testing.T) {
	t.Parallel()
	ex, env, ns := newTestExecutor(t)
	job := submitJob(t, ex, env, ns, "cancel-fin-1")
	if err := ex.Cancel(context.Background(), "cancel-fin-1"); err != nil {
		t.Fatal(err)
	}
	if !jobGone(t, env, ns, job.Name) {
		t.Error("the canceled Job is still there: its finalizer was left on")
	}
	if lost := reap(t, ex); len(lost) != 0 {
		t.Errorf("Reap = %+v after a cancel, want nothing: Cancel's caller reported CANCELED", lost)
	}
}
