package builds

import (
	"context"
	"errors"
	"fmt"

	"github.com/alternatefutures/af-builder/shared/callback"
)

// Reap is one round of dispatch's housekeeping, run by the serve loop on a
// ticker and by the Lambda schedule:
//
//   - every build whose runner ended without reporting (killed, evicted,
//     lost with its node, unable to reach the API) is reported FAILED, so
//     that no build stays RUNNING forever;
//   - with supersede on, every service and branch is left with only its
//     newest unfinished build: the cancel a push could not finish in its
//     webhook's time (an overloaded API server, a deadline) happens here.
//
// It returns how many lost builds it reported.
//
// The executor hands each lost build out once, so a report that fails here
// is not retried by a later Reap: the callback client's own retries are the
// chance it gets. A duplicate is harmless (the API keeps the first terminal
// status), a build left RUNNING is not.
func (s *Service) Reap(ctx context.Context) (int, error) {
	lost, reapErr := s.exec.Reap(ctx)
	if reapErr != nil {
		reapErr = fmt.Errorf("reap: %w", reapErr)
		// Builds found before the error are marked: report them anyway.
	}
	log := s.logger(ctx)
	errs := []error{reapErr}
	reported := 0
	for _, l := range lost {
		// No logs: the runner's last tail, stored by the API, stays.
		err := s.report(ctx, l.BuildJobID, callback.Failed, string(callback.ClassInfrastructure), l.Reason, l.CallbackURL)
		if err != nil {
			log.Error("could not report a lost build", "build", l.BuildJobID, "reason", l.Reason, "err", err)
			errs = append(errs, fmt.Errorf("report lost build %s: %w", l.BuildJobID, err))
			continue
		}
		reported++
		log.Warn("reported a lost build FAILED", "build", l.BuildJobID, "reason", l.Reason)
	}
	if s.cfg.Supersede {
		if _, err := s.ReconcileSupersede(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return reported, errors.Join(errs...)
}

// ReconcileSupersede cancels every unfinished build that a newer unfinished
// build of the same service and branch supersedes, and returns how many.
func (s *Service) ReconcileSupersede(ctx context.Context) (int, error) {
	stale, err := s.exec.Superseded(ctx)
	if err != nil {
		return 0, fmt.Errorf("reconcile supersede: %w", err)
	}
	n := 0
	for _, st := range stale {
		n += s.cancelStale(ctx, []string{st.BuildJobID}, st.By, st.ServiceID, st.Branch, st.CallbackURL)
	}
	return n, nil
}
