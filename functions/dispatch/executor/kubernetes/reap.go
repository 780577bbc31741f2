package kubernetes

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/alternatefutures/af-builder/functions/dispatch/executor"
	"github.com/alternatefutures/af-builder/shared/contract"
)

// AnnotationReaped marks a Job the reaper has dealt with (its value is
// when), so a finished build is looked at, and reported, only once.
const AnnotationReaped = "af-builder.io/reaped"

// ReleaseTimeout is how long a Job may stay suspended (created, its Secret
// not yet stored) before the reaper reports its build FAILED and deletes
// it: long enough for GitHub's or the platform's retry of the request to
// complete it.
const ReleaseTimeout = 10 * time.Minute

// Reap finds the builds whose runner ended without reporting: Jobs that
// failed, or whose builder container has terminated, and that are not yet
// marked, Jobs someone deleted before their runner started, and Jobs whose
// runner cannot start (StartTimeout; those it deletes). Each one is
// marked with a patch that carries the Job's resourceVersion, so of two
// dispatch instances reaping at once only one reports it; a Job that
// changed meanwhile is simply looked at next time. Builds whose runner did
// report are marked too, and not returned. A marked Job no longer carries
// FinalizerReport: only the Jobs of builds still in flight wait for
// dispatch when they are deleted.
func (e *Executor) Reap(ctx context.Context) ([]executor.Lost, error) {
	jobs, err := e.listManaged(ctx)
	if err != nil {
		return nil, err
	}
	pods, err := e.listBuildPods(ctx)
	if err != nil {
		return nil, err
	}
	var lost []executor.Lost
	for i := range jobs {
		job := &jobs[i]
		id := job.Annotations[LabelBuildID]
		if id == "" {
			continue
		}
		if job.DeletionTimestamp != nil {
			if !slices.Contains(job.Finalizers, FinalizerReport) {
				// Deleted by dispatch (Cancel reported CANCELED), or made
				// before the finalizer was.
				continue
			}
			reason := deletedVerdict(job, ownedPods(pods[job.Labels[LabelBuildID]], job.UID))
			settled, err := e.markReaped(ctx, job)
			if err != nil {
				return lost, fmt.Errorf("reap build %s: %w", id, err)
			}
			if settled && reason != "" {
				lost = append(lost, executor.Lost{BuildJobID: id, Reason: reason, CallbackURL: callbackURL(job)})
			}
			continue
		}
		if job.Annotations[AnnotationReaped] != "" {
			continue
		}
		if suspended(job) {
			// Never released: the Submit that created it failed before its
			// Secret was stored, and no repeat has completed it since.
			if time.Since(job.CreationTimestamp.Time) < ReleaseTimeout {
				continue
			}
			marked, err := e.markReaped(ctx, job)
			if err != nil {
				return lost, fmt.Errorf("reap build %s: %w", id, err)
			}
			if marked {
				e.deleteJob(ctx, job)
				lost = append(lost, executor.Lost{BuildJobID: id, CallbackURL: callbackURL(job),
					Reason: "dispatch could not finish starting the build (its credentials were never stored), and no retry did"})
			}
			continue
		}
		if JobState(job) == executor.StateSucceeded {
			// Complete (the builder exited 0) or ready (SUCCEEDED delivered,
			// the cache export running): the runner reported. Let go at
			// once, so that finished Jobs never wait on dispatch to be
			// deleted (with the namespace, say).
			if _, err := e.markReaped(ctx, job); err != nil {
				return lost, fmt.Errorf("reap build %s: %w", id, err)
			}
			continue
		}
		owned := ownedPods(pods[job.Labels[LabelBuildID]], job.UID)
		if reason := cannotStart(owned, time.Now(), e.cfg.StartTimeout); reason != "" && JobState(job) != executor.StateFailed {
			marked, err := e.markReaped(ctx, job)
			if err != nil {
				return lost, fmt.Errorf("reap build %s: %w", id, err)
			}
			if marked {
				// Its runner never ran, so nothing else would end the
				// build before the Job's deadline (BUILD_TIMEOUT and more).
				e.deleteJob(ctx, job)
				lost = append(lost, executor.Lost{BuildJobID: id, Reason: reason, CallbackURL: callbackURL(job)})
			}
			continue
		}
		reason, decided := verdict(job, owned, time.Now())
		if !decided {
			continue
		}
		marked, err := e.markReaped(ctx, job)
		if err != nil {
			return lost, fmt.Errorf("reap build %s: %w", id, err)
		}
		if marked && reason != "" {
			lost = append(lost, executor.Lost{BuildJobID: id, Reason: reason, CallbackURL: callbackURL(job)})
		}
	}
	return lost, nil
}

// verdict decides one unfinished-or-failed Job: decided is false while the
// runner may still report (its pod is running or stopping); reason is
// empty when the runner reported itself.
func verdict(job *batchv1.Job, pods []corev1.Pod, now time.Time) (reason string, decided bool) {
	failed := JobState(job) == executor.StateFailed
	var lostReason string
	waiting, stopped := false, false
	for i := range pods {
		pod := &pods[i]
		term := builderTerminated(pod)
		switch {
		case term != nil && contract.RunnerReported(int(term.ExitCode)),
			// Killed during the cache export that follows SUCCEEDED.
			term != nil && strings.Contains(term.Message, contract.ReportedMark):
			return "", true
		case pod.Status.Reason == "Evicted":
			lostReason = "the build pod was evicted: " + pod.Status.Message
		case term != nil && term.Reason == "OOMKilled":
			lostReason = fmt.Sprintf("the build container was killed: OOMKilled (exit %d) — raise the builder memory limit or reduce the build's memory use", term.ExitCode)
		case term != nil && term.ExitCode == contract.ExitReportFailed:
			lostReason = "the runner could not deliver its terminal status (exit 3)"
		case term != nil:
			why := term.Reason
			if why == "" {
				why = "ended"
			}
			lostReason = fmt.Sprintf("the build container was killed: %s (exit %d)", why, term.ExitCode)
			stopped = true
		case pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded:
			// Over without the builder ever terminating on record: the
			// node went away with it, or the kubelet gave up on it.
			lostReason = "the build pod stopped before the runner reported"
			if pod.Status.Reason != "" || pod.Status.Message != "" {
				lostReason += ": " + joinNonEmpty(pod.Status.Reason, pod.Status.Message)
			}
			stopped = true
		default:
			// Still running or stopping: after a deadline or a failure the
			// runner gets its grace period to report, and usually does.
			waiting = true
		}
	}
	deadline := deadlineExceeded(job) || deadlinePassed(job, now)
	switch {
	case stopped && deadline:
		// The Job controller deletes the pods once the deadline passes,
		// and only then writes its condition: the kill is the deadline's,
		// whichever the reaper sees first. A runner that was never
		// started (its image never pulled) ends as ContainerStatusUnknown.
		return deadlineReason, true
	case lostReason != "":
		return lostReason, true
	case waiting || !failed:
		return "", false
	case exitedReported(job):
		// Its pod is gone (deleted, drained), but not before the Job
		// controller read how the runner ended.
		return "", true
	case deadlineExceeded(job):
		return deadlineReason, true
	default:
		return "the build pod disappeared (node lost?)", true
	}
}

// deletedVerdict decides a build whose Job someone other than dispatch
// deleted: reason is empty when its runner reported or will (a started
// runner gets SIGTERM once the Job is gone, and its grace period to report).
func deletedVerdict(job *batchv1.Job, pods []corev1.Pod) (reason string) {
	switch {
	case job.Annotations[AnnotationReaped] != "",
		// Never released: no one was told the build was queued.
		suspended(job),
		hasCondition(job, batchv1.JobComplete), hasCondition(job, batchv1.JobSuccessCriteriaMet),
		exitedReported(job),
		job.Status.Ready != nil && *job.Status.Ready > 0 && reportsReady(job):
		return ""
	}
	started := false
	for i := range pods {
		started = started || builderStarted(&pods[i])
	}
	if !started {
		return "the build's Job was deleted while no runner of it was running"
	}
	if reason, decided := verdict(job, pods, time.Now()); decided {
		return reason
	}
	return ""
}

// startFailures are the reasons a container waits that only a change to
// the cluster ends: its image cannot be pulled (absent, misnamed, no pull
// secret), or its configuration (a Secret, a volume) cannot be made. The
// kubelet keeps retrying them until the Job's deadline.
var startFailures = []string{"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName",
	"CreateContainerConfigError", "CreateContainerError"}

// cannotStart explains why a build pod's runner has not started timeout
// after the kubelet took the pod: the runner's container, or a sidecar it
// starts after, waits for one of startFailures. Empty while that is not so.
func cannotStart(pods []corev1.Pod, now time.Time, timeout time.Duration) string {
	for i := range pods {
		pod := &pods[i]
		if pod.DeletionTimestamp != nil || pod.Status.StartTime == nil || now.Sub(pod.Status.StartTime.Time) < timeout || builderStarted(pod) {
			continue
		}
		for _, cs := range slices.Concat(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses) {
			if w := cs.State.Waiting; w != nil && slices.Contains(startFailures, w.Reason) {
				msg := w.Message
				if len(msg) > 300 {
					msg = strings.ToValidUTF8(msg[:300], "") + "..."
				}
				return fmt.Sprintf("the build pod could not start its %s container in %s: %s", cs.Name, timeout, joinNonEmpty(w.Reason, msg))
			}
		}
	}
	return ""
}

func builderStarted(pod *corev1.Pod) bool {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == BuilderContainer && (cs.State.Running != nil || cs.State.Terminated != nil) {
			return true
		}
	}
	return false
}

const deadlineReason = "the build exceeded its deadline"

// deadlineExceeded reports whether the Job controller failed the Job for
// its activeDeadlineSeconds. It sets FailureTarget first and Failed only
// once the pods are gone, so the reaper can see the first alone.
func deadlineExceeded(job *batchv1.Job) bool {
	return hasConditionReason(job, batchv1.JobFailed, batchv1.JobReasonDeadlineExceeded) ||
		hasConditionReason(job, batchv1.JobFailureTarget, batchv1.JobReasonDeadlineExceeded)
}

// deadlinePassed reports whether the Job has been active for its
// activeDeadlineSeconds, the controller's own rule, before the controller
// has said so.
func deadlinePassed(job *batchv1.Job, now time.Time) bool {
	ads, start := job.Spec.ActiveDeadlineSeconds, job.Status.StartTime
	return ads != nil && start != nil && !now.Before(start.Add(time.Duration(*ads)*time.Second))
}

// exitedReported reports whether the Job failed by reportedExitPolicy: its
// runner exited with a code after which it has reported.
func exitedReported(job *batchv1.Job) bool {
	return hasConditionReason(job, batchv1.JobFailureTarget, batchv1.JobReasonPodFailurePolicy) ||
		hasConditionReason(job, batchv1.JobFailed, batchv1.JobReasonPodFailurePolicy)
}

func now() string { return time.Now().UTC().Format(time.RFC3339) }

func builderTerminated(pod *corev1.Pod) *corev1.ContainerStateTerminated {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == BuilderContainer {
			return cs.State.Terminated
		}
	}
	return nil
}

func hasConditionReason(job *batchv1.Job, t batchv1.JobConditionType, reason string) bool {
	for _, c := range job.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue && c.Reason == reason {
			return true
		}
	}
	return false
}

func joinNonEmpty(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	default:
		return a + " (" + b + ")"
	}
}

// callbackURL is the builder's CALLBACK_URL: a plain env value, never a
// secret (the token is the secret).
func callbackURL(job *batchv1.Job) string {
	for _, c := range job.Spec.Template.Spec.Containers {
		if c.Name != BuilderContainer {
			continue
		}
		for _, v := range c.Env {
			if v.Name == "CALLBACK_URL" && v.ValueFrom == nil {
				return v.Value
			}
		}
	}
	return ""
}

// markReaped sets AnnotationReaped if the Job is unchanged since it was
// listed, and removes FinalizerReport in the same patch: the build is dealt
// with (a Job someone deleted then goes). It reports false when another
// reaper, or a status update, got there first.
func (e *Executor) markReaped(ctx context.Context, job *batchv1.Job) (bool, error) {
	_, err := e.letGo(ctx, job.Namespace, job.Name, map[string]any{
		"uid":             job.UID,
		"resourceVersion": job.ResourceVersion,
		"annotations":     map[string]string{AnnotationReaped: now()},
	})
	switch {
	case err == nil:
		return true, nil
	case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
		return false, nil
	default:
		return false, fmt.Errorf("mark job %s reaped: %w", job.Name, err)
	}
}

func (e *Executor) listManaged(ctx context.Context) ([]batchv1.Job, error) {
	sel := labels.Set{labelManagedBy: managerName}.String()
	var out []batchv1.Job
	opts := metav1.ListOptions{LabelSelector: sel, Limit: 250}
	for {
		list, err := e.client.BatchV1().Jobs(e.cfg.Namespace).List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("reap: list jobs: %w", err)
		}
		out = append(out, list.Items...)
		if list.Continue == "" {
			return out, nil
		}
		opts.Continue = list.Continue
	}
}

// listBuildPods returns the namespace's build pods by their build-id label,
// in one list rather than one per Job.
func (e *Executor) listBuildPods(ctx context.Context) (map[string][]corev1.Pod, error) {
	sel := labels.Set{labelName: appName, labelComponent: componentName}.String()
	out := map[string][]corev1.Pod{}
	opts := metav1.ListOptions{LabelSelector: sel, Limit: 250}
	for {
		list, err := e.client.CoreV1().Pods(e.cfg.Namespace).List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("reap: list build pods: %w", err)
		}
		for _, p := range list.Items {
			if id := p.Labels[LabelBuildID]; id != "" {
				out[id] = append(out[id], p)
			}
		}
		if list.Continue == "" {
			return out, nil
		}
		opts.Continue = list.Continue
	}
}

// ownedPods keeps the pods of this Job, not of an earlier one of the same
// name (a build resubmitted after a cancel) whose pods linger.
func ownedPods(pods []corev1.Pod, uid types.UID) []corev1.Pod {
	var out []corev1.Pod
	for i := range pods {
		if ownedBy(&pods[i], uid) {
			out = append(out, pods[i])
		}
	}
	return out
}

// deleteJob removes a Job the reaper gave up on, marked and let go of its
// finalizer. Best effort: a Job left behind is marked reaped and looked at
// no more.
func (e *Executor) deleteJob(ctx context.Context, job *batchv1.Job) {
	_ = e.client.BatchV1().Jobs(job.Namespace).Delete(ctx, job.Name, metav1.DeleteOptions{
		PropagationPolicy: ptr(metav1.DeletePropagationBackground),
		Preconditions:     &metav1.Preconditions{UID: &job.UID},
	})
}

// Superseded lists the unfinished builds that a newer unfinished build of
// the same service and branch supersedes, from one list of the namespace's
// Jobs.
func (e *Executor) Superseded(ctx context.Context) ([]executor.Stale, error) {
	jobs, err := e.listManaged(ctx)
	if err != nil {
		return nil, err
	}
	var open []executor.Unfinished
	for i := range jobs {
		job := &jobs[i]
		id := job.Annotations[LabelBuildID]
		if id == "" || job.DeletionTimestamp != nil || finished(job) || suspended(job) {
			continue
		}
		open = append(open, executor.Unfinished{
			BuildJobID:  id,
			ServiceID:   job.Annotations[LabelServiceID],
			Branch:      job.Annotations[LabelBranch],
			CallbackURL: callbackURL(job),
			Order:       order(job),
		})
	}
	return executor.SupersededAmong(open), nil
}
