package api

import (
	"context"
	"errors"
	"fmt"

	"github.com/alternatefutures/af-builder/shared/callback"
)

// Reap reports FAILED for every build whose runner ended without reporting
// (killed, evicted, lost with its node, unable to reach the API), so that no
// build stays RUNNING forever. It returns how many it reported.
//
// The executor hands each lost build out once, so a report that fails here
// is not retried by a later Reap: the callback client's own retries are the
// chance it gets. A duplicate is harmless (the API keeps the first terminal
// status), a build left RUNNING is not.
func (s *Server) Reap(ctx context.Context) (int, error) {
	lost, reapErr := s.exec.Reap(ctx)
	if reapErr != nil {
		reapErr = fmt.Errorf("reap: %w", reapErr)
		// Builds found before the error are marked: report them anyway.
	}
	log := s.logger(ctx)
	var errs []error
	reported := 0
	for _, l := range lost {
		err := s.send(ctx, l.CallbackURL, callback.Payload{
			BuildJobID:   l.BuildJobID,
			Status:       callback.Failed,
			Logs:         "[dispatch] " + l.Reason + "\n",
			ErrorMessage: l.Reason,
			ErrorClass:   "infrastructure",
		})
		if err != nil {
			log.Error("could not report a lost build", "build", l.BuildJobID, "reason", l.Reason, "err", err)
			errs = append(errs, fmt.Errorf("report lost build %s: %w", l.BuildJobID, err))
			continue
		}
		reported++
		log.Warn("reported a lost build FAILED", "build", l.BuildJobID, "reason", l.Reason)
	}
	errs = append(errs, s.refreshMemory(ctx)) // replay.go
	return reported, errors.Join(append([]error{reapErr}, errs...)...)
}
