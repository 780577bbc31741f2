package report

import (
	"context"
	"errors"

	"github.com/alternatefutures/af-builder/runner/failure"
	"github.com/alternatefutures/af-builder/runner/pipeline"
	"github.com/alternatefutures/af-builder/shared/callback"
	"github.com/alternatefutures/af-builder/shared/contract"
)

// ErrSignal is the cause a build is stopped with when the runner receives
// SIGTERM: the build was cancelled, or the platform is stopping its pod.
var ErrSignal = errors.New("the runner received SIGTERM: the build was cancelled or its pod was stopped")

// ConfigFailure is the terminal status of a build whose contract did not
// load. It blames the user only when every bad variable is one of theirs.
func ConfigFailure(err error) callback.Payload {
	return callback.Payload{
		Status:       callback.Failed,
		ErrorMessage: err.Error(),
		FailedPhase:  string(failure.Config),
		ErrorClass:   string(configClass(err)),
	}
}

func configClass(err error) failure.Class {
	var es contract.Errors
	if !errors.As(err, &es) {
		return failure.Infrastructure
	}
	for _, f := range es.Fields() {
		if !contract.IsUserSetting(f) {
			return failure.Infrastructure
		}
	}
	return failure.User
}

// Outcome is the terminal status for what the pipeline returned. ctx is the
// build's context: when it was stopped from outside (SIGTERM, BUILD_TIMEOUT)
// that is the reason reported, whichever phase noticed it; a signal is the
// platform's doing, a timeout the build's.
func Outcome(ctx context.Context, env contract.Env, out pipeline.Outcome, err error) callback.Payload {
	if err == nil {
		return callback.Payload{
			Status:            callback.Succeeded,
			ImageTag:          env.ImageTag,
			CommitSHA:         out.CommitSHA,
			DetectedFramework: out.Detected.Framework,
			DetectedPort:      out.Detected.Port,
			ImageDigest:       out.ImageDigest,
			PhaseTimingsMs:    out.TimingsMs(),
			CacheHit:          out.Steps.CacheHit(),
			CachedSteps:       out.Steps.Cached,
			Steps:             out.Steps.Total,
			Planner:           out.Planner,
			PlannerReason:     out.PlannerWhy,
		}
	}
	fe := failure.From(out.Phase, err)
	if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
		class := failure.User
		if errors.Is(cause, ErrSignal) {
			class = failure.Infrastructure
		}
		fe = failure.New(fe.Phase, class, cause.Error(), err)
	}
	return callback.Payload{
		Status:         callback.Failed,
		CommitSHA:      out.CommitSHA,
		ErrorMessage:   fe.Message,
		FailedPhase:    string(fe.Phase),
		ErrorClass:     string(fe.Class),
		PhaseTimingsMs: out.TimingsMs(),
	}
}
