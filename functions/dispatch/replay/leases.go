package replay

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	k8s "k8s.io/client-go/kubernetes"
)

// Label and annotations of a record's Lease.
const (
	LabelRecord           = "af-builder.io/build-record"
	AnnotationBuildID     = "af-builder.io/build-id"
	AnnotationFingerprint = "af-builder.io/request-fingerprint"
	AnnotationState       = "af-builder.io/state"
	AnnotationJob         = "af-builder.io/job"
	AnnotationNamespace   = "af-builder.io/job-namespace"
	AnnotationCreated     = "af-builder.io/dispatched-at"
)

// Leases keeps each record as a coordination.k8s.io Lease named like the
// build's Job, in the builds' namespace. A Lease, rather than a ConfigMap:
// it is the API's kind for small coordination records, no pod can mount
// it, and granting it to dispatch grants nothing a build could use. It has
// no owner, so it outlives the Job it describes; Refresh prunes it.
type Leases struct {
	Client    k8s.Interface
	Namespace string
	// Name maps a build id to the Lease's name (the Job's name).
	Name func(buildJobID string) string
}

func (l *Leases) Claim(ctx context.Context, r Record) (Record, bool, error) {
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Name:      l.Name(r.BuildJobID),
			Namespace: l.Namespace,
			Labels:    map[string]string{LabelRecord: "true", "app.kubernetes.io/managed-by": "af-dispatch"},
			Annotations: map[string]string{
				AnnotationBuildID:     r.BuildJobID,
				AnnotationFingerprint: r.Fingerprint,
				AnnotationState:       r.State,
				AnnotationJob:         r.JobName,
				AnnotationNamespace:   r.Namespace,
				AnnotationCreated:     r.Created.UTC().Format(time.RFC3339),
			},
		},
	}
	leases := l.Client.CoordinationV1().Leases(l.Namespace)
	_, err := leases.Create(ctx, lease, metav1.CreateOptions{FieldManager: "af-dispatch"})
	if err == nil {
		return r, false, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return Record{}, false, fmt.Errorf("record build %s: %w", r.BuildJobID, err)
	}
	existing, err := leases.Get(ctx, lease.Name, metav1.GetOptions{})
	if err != nil {
		return Record{}, false, fmt.Errorf("read the record of build %s: %w", r.BuildJobID, err)
	}
	got := fromLease(existing)
	if got.BuildJobID != r.BuildJobID {
		return Record{}, false, fmt.Errorf("record %s belongs to build %q, not %q", lease.Name, got.BuildJobID, r.BuildJobID)
	}
	return got, true, nil
}

func (l *Leases) Update(ctx context.Context, id, state, jobName, namespace string) error {
	ann := map[string]string{AnnotationState: state}
	if jobName != "" {
		ann[AnnotationJob], ann[AnnotationNamespace] = jobName, namespace
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": ann}})
	_, err := l.Client.CoordinationV1().Leases(l.Namespace).Patch(ctx, l.Name(id), types.MergePatchType, patch,
		metav1.PatchOptions{FieldManager: "af-dispatch"})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("update the record of build %s: %w", id, err)
	}
	return nil
}

func (l *Leases) Get(ctx context.Context, id string) (Record, bool, error) {
	lease, err := l.Client.CoordinationV1().Leases(l.Namespace).Get(ctx, l.Name(id), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("read the record of build %s: %w", id, err)
	}
	if lease.Labels[LabelRecord] != "true" {
		// Not one of ours, whatever its name says.
		return Record{}, false, nil
	}
	return fromLease(lease), true, nil
}

func (l *Leases) List(ctx context.Context) ([]Record, error) {
	list, err := l.Client.CoordinationV1().Leases(l.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelRecord + "=true"})
	if err != nil {
		return nil, err
	}
	out := make([]Record, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, fromLease(&list.Items[i]))
	}
	return out, nil
}

func (l *Leases) Forget(ctx context.Context, id string) error {
	err := l.Client.CoordinationV1().Leases(l.Namespace).Delete(ctx, l.Name(id), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("forget build %s: %w", id, err)
	}
	return nil
}

func fromLease(l *coordinationv1.Lease) Record {
	a := l.Annotations
	created, err := time.Parse(time.RFC3339, a[AnnotationCreated])
	if err != nil {
		created = l.CreationTimestamp.Time
	}
	return Record{
		BuildJobID:  a[AnnotationBuildID],
		Fingerprint: a[AnnotationFingerprint],
		State:       a[AnnotationState],
		JobName:     a[AnnotationJob],
		Namespace:   a[AnnotationNamespace],
		Created:     created,
	}
}
