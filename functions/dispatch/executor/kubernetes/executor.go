package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sort"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/alternatefutures/af-builder/functions/dispatch/executor"
	"github.com/alternatefutures/af-builder/shared/validate"
)

// Executor runs builds as Jobs in one namespace.
type Executor struct {
	client k8s.Interface
	cfg    Config
	// cleanups are the rollbacks still running after their Submit
	// answered.
	cleanups sync.WaitGroup
}

var _ executor.Executor = (*Executor)(nil)

// New returns an Executor that uses client. cfg is validated here, so a
// misconfiguration surfaces at start-up rather than on the first webhook.
func New(client k8s.Interface, cfg Config) (*Executor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Executor{client: client, cfg: cfg}, nil
}

// NewFromREST builds the client from rc (kubeclient.Config.RESTConfig).
// No request is made until the first method call.
func NewFromREST(rc *rest.Config, cfg Config) (*Executor, error) {
	client, err := k8s.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return New(client, cfg)
}

// Submit creates the build's Job and Secret, or finds them already there.
//
// The Job is created suspended, then its Secret (owned by the Job, so the
// garbage collector removes it with the Job: no partial failure can leave
// credentials that nothing will ever delete), then the Job is released.
// Nothing runs before its credentials exist, and only a released Job is
// ever reported as submitted.
//
// Concurrent duplicates (a webhook and its redelivery, a repeated API call)
// are safe by construction: whichever gets a step done, the others find it
// done, and a Submit that fails part-way removes its Job only while nobody
// has released it (a delete preconditioned on the resourceVersion it
// created), so it can never take away a build a duplicate reported as
// queued. That rollback runs after the answer, not before it, so a failing
// Submit answers within its caller's time; if it cannot run at all, the
// suspended Job uses no node and the reaper removes it (ReleaseTimeout).
//
// A duplicate Submit of a released Job costs one create and two reads, and
// reports Created=false; a new build costs three writes.
func (e *Executor) Submit(ctx context.Context, b executor.Build) (executor.Handle, error) {
	job, secret, err := Render(e.cfg, b)
	if err != nil {
		return executor.Handle{}, err
	}
	id := b.Env.BuildJobID
	h := executor.Handle{Name: job.Name, Namespace: job.Namespace}
	jobs := e.client.BatchV1().Jobs(job.Namespace)
	// Set here rather than in Render, which must stay deterministic.
	job.Annotations[AnnotationSubmittedAt] = time.Now().UTC().Format(time.RFC3339Nano)
	if !b.PushedAt.IsZero() {
		job.Annotations[AnnotationPushedAt] = b.PushedAt.UTC().Format(time.RFC3339Nano)
	}
	job.Spec.Suspend = ptr(true)

	created, err := jobs.Create(ctx, job, metav1.CreateOptions{FieldManager: managerName})
	switch {
	case err == nil:
		h.Created = true
	case apierrors.IsAlreadyExists(err):
		existing, gerr := jobs.Get(ctx, job.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(gerr) {
			return h, fmt.Errorf("build %s: job %s: %w", id, job.Name, executor.ErrGone)
		}
		if gerr != nil {
			return h, fmt.Errorf("build %s: read existing job %s: %w", id, job.Name, gerr)
		}
		if got := existing.Annotations[LabelBuildID]; got != id {
			// A 40-bit hash collision, or a foreign object squatting on the
			// name: either way it is not this build.
			return h, fmt.Errorf("build %s: job %s belongs to build %q", id, job.Name, got)
		}
		if existing.DeletionTimestamp != nil {
			return h, fmt.Errorf("build %s: job %s is being deleted: %w", id, job.Name, executor.ErrGone)
		}
		if !suspended(existing) {
			// Released, so its Secret was stored; one read makes sure it
			// still is (a Secret deleted by hand is restored).
			if s, err := e.client.CoreV1().Secrets(job.Namespace).Get(ctx, secret.Name, metav1.GetOptions{}); err == nil && ownedBy(s, existing.UID) {
				return h, nil
			}
			if err := e.ensureSecret(ctx, existing, secret); err != nil {
				return h, fmt.Errorf("build %s: %w", id, err)
			}
			return h, nil
		}
		created = existing
	default:
		return h, fmt.Errorf("build %s: create job %s: %w", id, job.Name, err)
	}

	if err := e.ensureSecret(ctx, created, secret); err != nil {
		if h.Created {
			e.rollback(created)
		}
		return h, fmt.Errorf("build %s: %w", id, err)
	}
	if err := e.release(ctx, created); err != nil {
		if h.Created {
			e.rollback(created)
		}
		return h, fmt.Errorf("build %s: %w", id, err)
	}
	return h, nil
}

// cleanupTimeout bounds a rollback. It runs detached from the caller,
// whose going away (a client disconnect, the Lambda deadline) is one of the
// reasons to clean up.
const cleanupTimeout = 5 * time.Second

// rollback deletes a Job this Submit created and could not complete, in
// the background, unless someone released it since: the delete carries
// the resourceVersion of the create, and a release changes it.
func (e *Executor) rollback(job *batchv1.Job) {
	e.cleanups.Add(1)
	go func() {
		defer e.cleanups.Done()
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		// Best effort: a Job left behind is suspended, and the reaper
		// removes it. Each call is pinned to the version before it, so a
		// release in between keeps the Job.
		unblocked, err := e.letGo(ctx, job.Namespace, job.Name, map[string]any{"uid": job.UID, "resourceVersion": job.ResourceVersion})
		if err != nil {
			return
		}
		_ = e.client.BatchV1().Jobs(job.Namespace).Delete(ctx, job.Name, metav1.DeleteOptions{
			PropagationPolicy: ptr(metav1.DeletePropagationBackground),
			Preconditions:     &metav1.Preconditions{UID: &job.UID, ResourceVersion: &unblocked.ResourceVersion},
		})
	}()
}

// letGo removes FinalizerReport from the Job, with meta (preconditions
// such as uid and resourceVersion, annotations) in the same patch, and
// returns the Job as patched. A strategic merge patch removes the one entry
// without reading the list.
func (e *Executor) letGo(ctx context.Context, ns, name string, meta map[string]any) (*batchv1.Job, error) {
	m := maps.Clone(meta)
	m["$deleteFromPrimitiveList/finalizers"] = []string{FinalizerReport}
	patch, err := json.Marshal(map[string]any{"metadata": m})
	if err != nil {
		return nil, err
	}
	return e.client.BatchV1().Jobs(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: managerName})
}

// Wait blocks until the rollbacks of failed Submits have run; serve calls
// it before exiting.
func (e *Executor) Wait() { e.cleanups.Wait() }

func suspended(job *batchv1.Job) bool { return job.Spec.Suspend != nil && *job.Spec.Suspend }

// release lets the Job's pod start. The patch is pinned to the Job's UID,
// so it can never release a later Job of the same name.
func (e *Executor) release(ctx context.Context, job *batchv1.Job) error {
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"uid": job.UID},
		"spec":     map[string]any{"suspend": false},
	})
	if err != nil {
		return err
	}
	released, err := e.client.BatchV1().Jobs(job.Namespace).Patch(ctx, job.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: managerName})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("release job %s: %w", job.Name, executor.ErrGone)
	}
	if err != nil {
		return fmt.Errorf("release job %s: %w", job.Name, err)
	}
	if released.DeletionTimestamp != nil {
		// Deleted by someone else meanwhile, and held by FinalizerReport.
		// The caller is told it is gone, so the reaper must not report it
		// as well: the platform may submit the build again.
		_, _ = e.letGo(ctx, job.Namespace, job.Name, map[string]any{
			"uid": job.UID, "annotations": map[string]string{AnnotationReaped: now()},
		})
		return fmt.Errorf("release job %s: %w", job.Name, executor.ErrGone)
	}
	return nil
}

// ensureSecret makes sure the Secret owned by job exists. It creates first
// and reads only when the create finds one: a new build costs one call.
func (e *Executor) ensureSecret(ctx context.Context, job *batchv1.Job, secret *corev1.Secret) error {
	secrets := e.client.CoreV1().Secrets(job.Namespace)
	secret = secret.DeepCopy()
	secret.OwnerReferences = []metav1.OwnerReference{ownerRef(job)}

	for attempt := 0; ; attempt++ {
		_, err := secrets.Create(ctx, secret, metav1.CreateOptions{FieldManager: managerName})
		switch {
		case err == nil:
			return nil
		case !apierrors.IsAlreadyExists(err):
			// The API's message names the object, never the data.
			return fmt.Errorf("create secret %s: %w", secret.Name, err)
		}
		existing, err := secrets.Get(ctx, secret.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err) && attempt == 0:
			// Deleted in between (a cancel, the collector): try again.
			continue
		case err != nil:
			return fmt.Errorf("read secret %s: %w", secret.Name, err)
		case ownedBy(existing, job.UID):
			// A concurrent Submit of the same build got there first.
			return nil
		case attempt > 0:
			return fmt.Errorf("secret %s belongs to another job", secret.Name)
		}
		// Another Job's. If that is because this one was rolled back and a
		// duplicate Submit made a new Job of the same name, the Secret is
		// the new Job's: replacing it would hand the running build a Secret
		// owned by a Job that no longer exists, which the collector deletes.
		current, err := e.client.BatchV1().Jobs(job.Namespace).Get(ctx, job.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err) || err == nil && current.UID != job.UID:
			return fmt.Errorf("job %s: %w", job.Name, executor.ErrGone)
		case err != nil:
			return fmt.Errorf("read job %s: %w", job.Name, err)
		}
		// Left over from an earlier Job of the same name whose cleanup has
		// not happened (no GC yet, or a Cancel that could not delete it).
		// Its credentials are stale; replace it.
		err = secrets.Delete(ctx, existing.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &existing.UID},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("replace stale secret %s: %w", secret.Name, err)
		}
	}
}

func ownerRef(job *batchv1.Job) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion: "batch/v1",
		Kind:       "Job",
		Name:       job.Name,
		UID:        job.UID,
		Controller: ptr(true),
		// No BlockOwnerDeletion: nothing here deletes in the foreground, and
		// where the OwnerReferencesPermissionEnforcement admission plugin is
		// on, setting it would need update on jobs/finalizers as well.
	}
}

func ownedBy(obj metav1.Object, uid types.UID) bool {
	for _, ref := range obj.GetOwnerReferences() {
		if ref.UID == uid {
			return true
		}
	}
	return false
}

// Cancel deletes the build's Job and Secret. Background propagation: the
// Job disappears at once (so Status and Active stop reporting it) and the
// garbage collector then deletes its pod, which gets SIGTERM and its grace
// period to report CANCELED. The Secret is deleted explicitly as well, so
// the credentials are gone now rather than when the collector gets to them
// (and also where no collector runs, as on a bare test API server).
//
// The caller reports the build, so the Job is first marked reaped and let
// go of FinalizerReport, in one patch: the reaper leaves it, and the delete
// takes effect at once.
func (e *Executor) Cancel(ctx context.Context, buildJobID string) error {
	if err := validate.BuildJobID(buildJobID); err != nil {
		return fmt.Errorf("build id %w", err)
	}
	name := JobName(buildJobID)
	ns := e.cfg.Namespace

	_, err := e.letGo(ctx, ns, name, map[string]any{"annotations": map[string]string{AnnotationReaped: now()}})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("cancel build %s: mark job %s: %w", buildJobID, name, err)
	}
	jobErr := e.client.BatchV1().Jobs(ns).Delete(ctx, name, metav1.DeleteOptions{
		PropagationPolicy: ptr(metav1.DeletePropagationBackground),
	})
	if jobErr != nil && !apierrors.IsNotFound(jobErr) {
		return fmt.Errorf("cancel build %s: delete job %s: %w", buildJobID, name, jobErr)
	}
	secretErr := e.client.CoreV1().Secrets(ns).Delete(ctx, name, metav1.DeleteOptions{})
	if secretErr != nil && !apierrors.IsNotFound(secretErr) {
		return fmt.Errorf("cancel build %s: delete secret %s: %w", buildJobID, name, secretErr)
	}
	if apierrors.IsNotFound(jobErr) && apierrors.IsNotFound(secretErr) {
		return fmt.Errorf("cancel build %s: %w", buildJobID, executor.ErrNotFound)
	}
	return nil
}

// Status reads the build's state from its Job. A build whose Job is gone
// (canceled, or removed by its TTL) is not_found.
func (e *Executor) Status(ctx context.Context, buildJobID string) (executor.State, error) {
	if err := validate.BuildJobID(buildJobID); err != nil {
		return "", fmt.Errorf("build id %w", err)
	}
	name := JobName(buildJobID)
	job, err := e.client.BatchV1().Jobs(e.cfg.Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return executor.StateNotFound, nil
	}
	if err != nil {
		return "", fmt.Errorf("status of build %s: read job %s: %w", buildJobID, name, err)
	}
	if job.Annotations[LabelBuildID] != buildJobID {
		return executor.StateNotFound, nil
	}
	return JobState(job), nil
}

// JobState maps a Job to the executor's coarse states. The terminal
// conditions win; SuccessCriteriaMet and FailureTarget count as terminal
// because the Job controller sets them as soon as the outcome is decided,
// before it has finished stopping the pod (dind, here). Running means a pod
// is ready: dind answers and the builder has started. Everything before
// that (scheduling, image pulls, dind starting) is pending.
func JobState(job *batchv1.Job) executor.State {
	switch {
	case hasCondition(job, batchv1.JobComplete) || hasCondition(job, batchv1.JobSuccessCriteriaMet):
		return executor.StateSucceeded
	case hasCondition(job, batchv1.JobFailed) || hasCondition(job, batchv1.JobFailureTarget):
		return executor.StateFailed
	case job.DeletionTimestamp != nil:
		// Being canceled: it will not succeed.
		return executor.StateFailed
	case job.Status.Ready != nil && *job.Status.Ready > 0 && reportsReady(job):
		// The runner delivered SUCCEEDED (its readiness probe) and is
		// exporting the cache: over for the platform, and not to be
		// superseded or canceled, which would report a second time.
		return executor.StateSucceeded
	case job.Status.Active > 0:
		return executor.StateRunning
	default:
		return executor.StatePending
	}
}

// reportsReady reports whether the Job's runner has the readiness probe
// that passes once SUCCEEDED is delivered. A Job rendered without it (by an
// older dispatch) is ready while it runs.
func reportsReady(job *batchv1.Job) bool {
	for _, c := range job.Spec.Template.Spec.Containers {
		if c.Name == BuilderContainer {
			return c.ReadinessProbe != nil
		}
	}
	return false
}

func hasCondition(job *batchv1.Job, t batchv1.JobConditionType) bool {
	for _, c := range job.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func finished(job *batchv1.Job) bool {
	s := JobState(job)
	return s == executor.StateSucceeded || s == executor.StateFailed
}

// Active lists the build ids of the unfinished builds of one service and
// branch, oldest first, for superseding. The label selector narrows the
// list on the server; the annotations, which hold the exact values, decide,
// since a label may be a hashed form. A Job not yet released is no build
// yet (its Submit may still fail), so it neither supersedes nor is
// superseded. An empty serviceID matches nothing
// (such builds are never superseded); an empty branch matches builds
// submitted without one.
func (e *Executor) Active(ctx context.Context, serviceID, branch string) ([]string, error) {
	if serviceID == "" {
		return nil, nil
	}
	svcReq, err := labels.NewRequirement(LabelServiceID, selection.Equals, []string{LabelValue(serviceID)})
	if err != nil {
		return nil, fmt.Errorf("active builds: service id: %w", err)
	}
	var branchReq *labels.Requirement
	if branch == "" {
		branchReq, err = labels.NewRequirement(LabelBranch, selection.DoesNotExist, nil)
	} else {
		branchReq, err = labels.NewRequirement(LabelBranch, selection.Equals, []string{LabelValue(branch)})
	}
	if err != nil {
		return nil, fmt.Errorf("active builds: branch: %w", err)
	}
	selector := labels.NewSelector().Add(*svcReq, *branchReq).String()

	var found []batchv1.Job
	opts := metav1.ListOptions{LabelSelector: selector, Limit: 250}
	for {
		list, err := e.client.BatchV1().Jobs(e.cfg.Namespace).List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("active builds of service %s: list jobs: %w", serviceID, err)
		}
		for _, job := range list.Items {
			if job.Annotations[LabelServiceID] == serviceID &&
				job.Annotations[LabelBranch] == branch &&
				job.Annotations[LabelBuildID] != "" &&
				!finished(&job) && !suspended(&job) {
				found = append(found, job)
			}
		}
		if list.Continue == "" {
			break
		}
		opts.Continue = list.Continue
	}
	sort.SliceStable(found, func(i, j int) bool {
		return executor.Older(order(&found[i]), order(&found[j]))
	})
	ids := make([]string, len(found))
	for i := range found {
		ids[i] = found[i].Annotations[LabelBuildID]
	}
	return ids, nil
}

// order reads a Job's place among a branch's builds; Jobs created before the
// annotations existed fall back to their creation time.
func order(job *batchv1.Job) executor.Order {
	o := executor.Order{Submitted: job.CreationTimestamp.Time, Name: job.Name}
	if t, err := time.Parse(time.RFC3339Nano, job.Annotations[AnnotationSubmittedAt]); err == nil {
		o.Submitted = t
	}
	if t, err := time.Parse(time.RFC3339Nano, job.Annotations[AnnotationPushedAt]); err == nil {
		o.Pushed = t
	}
	return o
}
