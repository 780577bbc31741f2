package builds

import (
	"context"
	"fmt"
	"strconv"

	"github.com/alternatefutures/af-builder/functions/dispatch/buildreq"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor"
	"github.com/alternatefutures/af-builder/functions/dispatch/replay"
	"github.com/alternatefutures/af-builder/shared/contract"
)

// recall looks the build up in the replay memory before anything is
// minted or submitted. It claims a record for a build never seen (fresh),
// refuses a known id sent with a different request (*replay.ConflictError),
// and for a known build that was canceled or whose Job is gone returns
// *replay.KnownError, so that nothing is created again. A known build
// whose Job still exists goes on to Submit, which finds it.
func (s *Service) recall(ctx context.Context, req buildreq.Request, env contract.Env) (fresh bool, err error) {
	if s.mem == nil {
		return false, nil
	}
	fp := replay.Fingerprint(map[string]string{
		"buildJobId":      env.BuildJobID,
		"installationId":  strconv.FormatInt(int64(req.InstallationID), 10),
		"repo":            env.RepoOwner + "/" + env.RepoName,
		"ref":             env.RepoRef,
		"imageTag":        env.ImageTag,
		"rootDirectory":   env.RootDirectory,
		"buildCommand":    env.BuildCommand,
		"startCommand":    env.StartCommand,
		"callbackBaseUrl": buildreq.CallbackEndpoint(req.CallbackBaseURL),
		"serviceId":       req.ServiceID,
		"branch":          req.Branch,
	})
	rec, found, err := s.mem.Claim(ctx, replay.Record{
		BuildJobID: req.BuildJobID, Fingerprint: fp, State: replay.StateAccepted, Created: s.now(),
	})
	switch {
	case err != nil:
		return false, fmt.Errorf("build %s: %w", req.BuildJobID, err)
	case !found:
		return true, nil
	case rec.Fingerprint != fp:
		return false, &replay.ConflictError{BuildJobID: req.BuildJobID}
	case rec.State == replay.StateAccepted:
		// Claimed before, but its submission was never confirmed.
		return true, nil
	case rec.State == replay.StateCanceled:
		// Over, whether or not its Job is still being deleted.
		return false, &replay.KnownError{Record: rec}
	}
	st, err := s.exec.Status(ctx, req.BuildJobID)
	if err != nil {
		return false, fmt.Errorf("build %s: %w", req.BuildJobID, err)
	}
	if st == executor.StateNotFound {
		return false, &replay.KnownError{Record: rec}
	}
	return false, nil
}

// remember confirms a submitted build's record, with its Job. A failure
// only weakens replay protection for this build (a repeat after its Job is
// gone would submit it again), so it is logged, not returned.
func (s *Service) remember(ctx context.Context, id string, fresh bool, h executor.Handle) {
	if s.mem == nil || !fresh && !h.Created {
		return
	}
	if err := s.mem.Update(ctx, id, replay.StateQueued, h.Name, h.Namespace); err != nil {
		s.logger(ctx).Warn("could not record the submitted build", "build", id, "err", err)
	}
}

// rememberState records a state dispatch decided itself (canceled).
func (s *Service) rememberState(ctx context.Context, id, state string) {
	if s.mem == nil {
		return
	}
	if err := s.mem.Update(ctx, id, state, "", ""); err != nil {
		s.logger(ctx).Warn("could not record the build's state", "build", id, "state", state, "err", err)
	}
}

// refreshMemory runs with each reaper round: the last known state of each
// remembered build is read from its Job while the Job exists, and records
// past their retention are pruned.
func (s *Service) refreshMemory(ctx context.Context) error {
	if s.mem == nil {
		return nil
	}
	retention := s.cfg.ReplayRetention
	if retention <= 0 {
		retention = replay.Retention
	}
	n, err := replay.Refresh(ctx, s.mem, s.now(), retention, func(ctx context.Context, id string) (string, error) {
		st, err := s.exec.Status(ctx, id)
		return string(st), err
	})
	if n > 0 {
		s.logger(ctx).Info("pruned build records", "count", n)
	}
	if err != nil {
		return fmt.Errorf("refresh build records: %w", err)
	}
	return nil
}
