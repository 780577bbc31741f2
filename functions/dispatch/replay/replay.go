// Package replay remembers the builds dispatch has started, for longer than
// their Jobs live, so that a request repeated after its Job is gone (ended
// past its TTL, or deleted) creates nothing, and the same build id sent with
// a different request is refused rather than silently taken for the first.
//
// A record is kept for Retention (5 h by default, at least the callback
// token's 4 h: a caller can still be retrying with a build's id for that
// long). It holds a fingerprint of the request, the Job's name and the
// build's last known state. The Kubernetes implementation keeps each record
// in the cluster itself as a small labelled Lease beside the Jobs, so
// dispatch stays stateless (no new database); the reaper's rounds refresh
// the states and prune old records.
package replay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/alternatefutures/af-builder/shared/token"
)

// Retention is how long a record is kept by default.
const Retention = token.Lifetime + time.Hour

// MinRetention is the shortest retention allowed: the callback token's
// lifetime, for which a build id stays meaningful.
const MinRetention = token.Lifetime

// States of a record. Accepted means the record was made but the build's
// submission was never confirmed (dispatch died, or the create failed): a
// repeat submits it again. The others are the executor's states, plus
// canceled.
const (
	StateAccepted = "accepted"
	StateQueued   = "pending"
	StateCanceled = "canceled"
)

// Record is what is remembered of one build.
type Record struct {
	BuildJobID  string
	Fingerprint string
	JobName     string
	Namespace   string
	// State is the last state dispatch saw.
	State   string
	Created time.Time
}

// Terminal reports whether the state can no longer change.
func (r Record) Terminal() bool {
	switch r.State {
	case "succeeded", "failed", StateCanceled:
		return true
	}
	return false
}

// Memory keeps Records. Implementations: Leases (in the cluster, beside
// the Jobs) for the Kubernetes executor, and InMemory for the local
// executor, whose builds live no longer than its process anyway.
type Memory interface {
	// Claim stores r unless a record for r.BuildJobID exists; then it
	// returns that one and found=true.
	Claim(ctx context.Context, r Record) (existing Record, found bool, err error)
	// Update sets the state (and the Job's name and namespace, when given)
	// of an existing record.
	Update(ctx context.Context, id, state, jobName, namespace string) error
	// Get returns the record of one build; found is false when there is
	// none.
	Get(ctx context.Context, id string) (r Record, found bool, err error)
	// List returns every record.
	List(ctx context.Context) ([]Record, error)
	// Forget deletes a record.
	Forget(ctx context.Context, id string) error
}

// ErrConflict is returned when a build id comes back with another request.
var ErrConflict = errors.New("build id already used for a different request")

// ConflictError says which build id was reused.
type ConflictError struct{ BuildJobID string }

func (e *ConflictError) Error() string {
	return "build " + e.BuildJobID + " was already dispatched with a different request; a build id names one build"
}
func (e *ConflictError) Unwrap() error { return ErrConflict }

// KnownError is returned for a repeat of a build whose Job is gone: nothing
// is created, and the caller answers with the record.
type KnownError struct{ Record Record }

func (e *KnownError) Error() string {
	return "build " + e.Record.BuildJobID + " was already dispatched (last known state " + e.Record.State + "); it is not built again"
}

// Fingerprint identifies a request by the values that decide what is
// built and where it reports, normalised (decoded commands, cleaned root
// directory), so the same build sent as plain or base64 commands, or with
// fields in another order, is the same request.
func Fingerprint(fields map[string]string) string {
	b, _ := json.Marshal(fields) // map keys are sorted
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// Refresh brings the records' states up to date from the executor and
// deletes those older than retention. status returns the executor's state
// of a build ("not_found" once its Job is gone, which leaves the last
// known state as it was). It returns how many records it pruned.
func Refresh(ctx context.Context, m Memory, now time.Time, retention time.Duration,
	status func(ctx context.Context, id string) (string, error)) (int, error) {
	recs, err := m.List(ctx)
	if err != nil {
		return 0, fmt.Errorf("list build records: %w", err)
	}
	var errs []error
	pruned := 0
	for _, r := range recs {
		if now.Sub(r.Created) > retention {
			if err := m.Forget(ctx, r.BuildJobID); err != nil {
				errs = append(errs, err)
				continue
			}
			pruned++
			continue
		}
		if r.Terminal() || r.State == StateAccepted {
			continue
		}
		st, err := status(ctx, r.BuildJobID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if st != "not_found" && st != r.State {
			if err := m.Update(ctx, r.BuildJobID, st, "", ""); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return pruned, errors.Join(errs...)
}
