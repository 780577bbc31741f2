package kubernetes

import (
	"context"
	"fmt"
	"sort"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/alternatefutures/af-builder/functions/dispatch/executor"
	"github.com/alternatefutures/af-builder/shared/validate"
)

// Executor runs builds as Jobs in one namespace.
type Executor struct {
	client k8s.Interface
	cfg    Config
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

// NewFromConfig builds the client from cfg.Client. No request is made until
// the first method call.
func NewFromConfig(cfg Config) (*Executor, error) {
	rc, err := cfg.Client.RESTConfig()
	if err != nil {
		return nil, err
	}
	client, err := k8s.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return New(client, cfg)
}

// cleanupTimeout bounds the requests that undo a half-done Submit. They run
// on a context detached from the caller's, because the caller going away
// (client disconnect, Lambda deadline) is one of the reasons to clean up.
const cleanupTimeout = 5 * time.Second

// Submit creates the build's Job and Secret, or finds them already there.
//
// Order: the Job first, then the Secret with an ownerReference to the Job's
// UID. This is the order in which no partial failure can leave an orphan
// Secret, i.e. credentials that nothing will ever delete: the Secret never
// exists without its owner, so the garbage collector removes it with the
// Job (on Cancel, or ttlSecondsAfterFinished). The reverse order (Secret,
// then Job, then patch the owner in) leaves an ownerless Secret whenever
// the process dies or the Job create fails in between.
//
// The cost is a window in which the Job exists but its Secret does not. The
// builder's secretKeyRef is not optional, so the kubelet does not start the
// builder until the Secret appears; since dind starts first, the Secret
// normally exists long before. If creating the Secret fails, the Job is
// deleted again; if even that fails, the Job waits harmlessly until a retried
// Submit supplies the Secret or its deadline ends it.
//
// A duplicate Submit (same build id) finds the Job, leaves an existing Secret
// untouched (it is immutable anyway) and reports Created=false.
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

	created, err := jobs.Create(ctx, job, metav1.CreateOptions{FieldManager: managerName})
	switch {
	case err == nil:
		h.Created = true
	case apierrors.IsAlreadyExists(err):
		existing, gerr := jobs.Get(ctx, job.Name, metav1.GetOptions{})
		if gerr != nil {
			return h, fmt.Errorf("build %s: read existing job %s: %w", id, job.Name, gerr)
		}
		if got := existing.Annotations[LabelBuildID]; got != id {
			// A 40-bit hash collision, or a foreign object squatting on the
			// name: either way it is not this build.
			return h, fmt.Errorf("build %s: job %s belongs to build %q", id, job.Name, got)
		}
		if existing.DeletionTimestamp != nil {
			return h, fmt.Errorf("build %s: job %s is being deleted (canceled); retry later", id, job.Name)
		}
		created = existing
	default:
		return h, fmt.Errorf("build %s: create job %s: %w", id, job.Name, err)
	}

	if err := e.ensureSecret(ctx, created, secret); err != nil {
		if h.Created {
			e.rollback(ctx, created)
		}
		return h, fmt.Errorf("build %s: %w", id, err)
	}
	return h, nil
}

// ensureSecret makes sure the Secret owned by job exists. On a duplicate
// Submit it normally finds it and changes nothing.
func (e *Executor) ensureSecret(ctx context.Context, job *batchv1.Job, secret *corev1.Secret) error {
	secrets := e.client.CoreV1().Secrets(job.Namespace)
	secret = secret.DeepCopy()
	secret.OwnerReferences = []metav1.OwnerReference{ownerRef(job)}

	for attempt := 0; ; attempt++ {
		existing, err := secrets.Get(ctx, secret.Name, metav1.GetOptions{})
		switch {
		case err == nil && ownedBy(existing, job.UID):
			return nil
		case err == nil && attempt == 0:
			// Left over from an earlier Job of the same name whose cleanup
			// has not happened (no GC yet, or a Cancel that could not delete
			// it). Its credentials are stale; replace it.
			err := secrets.Delete(ctx, existing.Name, metav1.DeleteOptions{
				Preconditions: &metav1.Preconditions{UID: &existing.UID},
			})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return fmt.Errorf("replace stale secret %s: %w", secret.Name, err)
			}
		case err == nil:
			return fmt.Errorf("secret %s belongs to another job", secret.Name)
		case !apierrors.IsNotFound(err):
			return fmt.Errorf("read secret %s: %w", secret.Name, err)
		}

		_, err = secrets.Create(ctx, secret, metav1.CreateOptions{FieldManager: managerName})
		switch {
		case err == nil:
			return nil
		case apierrors.IsAlreadyExists(err) && attempt == 0:
			// A concurrent Submit of the same build got there first; look
			// again whose it is.
			continue
		default:
			// The API's message names the object, never the data.
			return fmt.Errorf("create secret %s: %w", secret.Name, err)
		}
	}
}

func (e *Executor) rollback(ctx context.Context, job *batchv1.Job) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	// Best effort: see Submit for why a Job left behind is harmless.
	_ = e.client.BatchV1().Jobs(job.Namespace).Delete(ctx, job.Name, metav1.DeleteOptions{
		PropagationPolicy: ptr(metav1.DeletePropagationBackground),
		Preconditions:     &metav1.Preconditions{UID: &job.UID},
	})
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
func (e *Executor) Cancel(ctx context.Context, buildJobID string) error {
	if err := validate.BuildJobID(buildJobID); err != nil {
		return fmt.Errorf("build id %w", err)
	}
	name := JobName(buildJobID)
	ns := e.cfg.Namespace

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
	case job.Status.Ready != nil && *job.Status.Ready > 0:
		return executor.StateRunning
	default:
		return executor.StatePending
	}
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
// since a label may be a hashed form. An empty serviceID matches nothing
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
				!finished(&job) {
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
