package builds

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"sync"

	"github.com/alternatefutures/af-builder/functions/dispatch/buildreq"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor"
	"github.com/alternatefutures/af-builder/functions/dispatch/subscriptions"
	"github.com/alternatefutures/af-builder/functions/dispatch/webhook"
	"github.com/alternatefutures/af-builder/shared/callback"
)

// PushBuild is what happened to one service's build of a push.
type PushBuild struct {
	ServiceID  string `json:"serviceId"`
	BuildJobID string `json:"buildJobId"`
	// Status is queued, skipped, invalid or failed.
	Status    string   `json:"status"`
	JobName   string   `json:"jobName,omitempty"`
	Namespace string   `json:"namespace,omitempty"`
	Reason    string   `json:"reason,omitempty"`
	Fields    []string `json:"fields,omitempty"`
}

// Per-service outcomes of a push.
const (
	PushQueued  = "queued"
	PushSkipped = "skipped"
	PushInvalid = "invalid"
	PushFailed  = "failed"
)

// PushResult is the outcome of HandlePush.
type PushResult struct {
	// Tracked is false when no service tracks the pushed branch.
	Tracked bool
	Builds  []PushBuild
	// Retryable is true when a build failed for a reason a redelivery
	// (same ids, so nothing is built twice) can get past.
	Retryable bool
}

// ErrLookup wraps a failed subscription lookup: nothing was started, and a
// redelivery may succeed.
var ErrLookup = errors.New("could not look up the services tracking this branch")

// HandlePush starts (or finds) the build of every service that tracks the
// push's branch and that the push touches, and returns what it started.
// The callbacks that follow (closing reserved builds it will not build,
// superseding older builds) run after it returns, in the background (see
// Wait): each can wait the whole callback timeout on a slow
// service-cloud-api, and GitHub's answer must not wait for them. ctx
// bounds the starting; the follow-ups get FollowUpTimeout of their own.
func (s *Service) HandlePush(ctx context.Context, p webhook.Push) (PushResult, error) {
	log := s.logger(ctx)
	services, err := s.subs.Lookup(ctx, subscriptions.PushKey{
		DeliveryID:     p.DeliveryID,
		InstallationID: p.InstallationID,
		RepoOwner:      p.Owner,
		RepoName:       p.Repo,
		Branch:         p.Branch,
		CommitSHA:      p.After,
	})
	if err != nil {
		log.Error("subscription lookup failed", "err", err)
		return PushResult{}, errors.Join(ErrLookup, err)
	}
	out := PushResult{Tracked: len(services) > 0}
	tokens := newRepoTokens(s.gh)
	var followUps []func(context.Context)
	for _, svc := range services {
		b, then := s.pushBuild(ctx, p, svc, tokens)
		out.Builds = append(out.Builds, b)
		if b.Status == PushFailed {
			out.Retryable = true
		}
		if then != nil {
			followUps = append(followUps, then)
		}
	}
	s.later(ctx, followUps)
	return out, nil
}

// later runs fs one after the other in the background, on a context that
// keeps ctx's values (the request's logger) but not its deadline, bounded
// by FollowUpTimeout. What they do not finish, the reaper's round
// reconciles (supersede) or nobody needs (a reserved build's close is
// best effort, as before).
func (s *Service) later(ctx context.Context, fs []func(context.Context)) {
	if len(fs) == 0 {
		return
	}
	s.followUps.Add(1)
	go func() {
		defer s.followUps.Done()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.FollowUpTimeout)
		defer cancel()
		for _, f := range fs {
			f(ctx)
		}
	}()
}

// Wait blocks until every follow-up HandlePush left running has ended
// (each is bounded by FollowUpTimeout). The serve loop calls it on
// shutdown; under Lambda it runs before an invocation returns, since a
// frozen sandbox would stall them.
func (s *Service) Wait() { s.followUps.Wait() }

// pushBuild starts (or finds) one service's build for a push. The callback
// work that follows from it is returned for the caller to run once every
// service's build has been submitted.
func (s *Service) pushBuild(ctx context.Context, p webhook.Push, svc subscriptions.Service, tokens *repoTokens) (PushBuild, func(context.Context)) {
	log := s.logger(ctx).With("service", svc.ServiceID)
	id := svc.BuildJobID
	reserved := id != ""
	if !reserved {
		id = PushBuildID(p, svc.ServiceID)
	}
	out := PushBuild{ServiceID: svc.ServiceID, BuildJobID: id}

	if err := svc.Validate(); err != nil {
		out.Status, out.Reason = PushInvalid, err.Error()
		log.Warn("service not built: invalid configuration", "build", id, "err", err)
		return out, s.closeReserved(reserved, id, callback.Failed, "build configuration is invalid: "+err.Error())
	}
	if ok, why := svc.Touches(p.Changed, p.ChangesKnown); !ok {
		out.Status, out.Reason = PushSkipped, why
		log.Info("service skipped", "build", id, "reason", why)
		return out, s.closeReserved(reserved, id, callback.Canceled, "skipped: "+why)
	}

	req := buildreq.Request{
		BuildJobID:     id,
		InstallationID: buildreq.ID(p.InstallationID),
		RepoOwner:      p.Owner,
		RepoName:       p.Repo,
		CommitSHA:      p.After,
		ImageTag:       svc.ImageTag,
		RootDirectory:  svc.RootDirectory,
		BuildCommand:   svc.BuildCommand,
		StartCommand:   svc.StartCommand,
		Builder:        svc.Builder,
		ServiceID:      svc.ServiceID,
		Branch:         p.Branch,
		DefaultBranch:  p.DefaultBranch,
		PushedAt:       p.PushedAt,
	}
	h, err := s.start(ctx, req, "push", tokens)
	if err != nil {
		pr := Explain(err)
		if pr.Kind == Known {
			// A redelivery after the Job is gone: nothing is created again.
			out.Status, out.Reason = PushQueued, pr.Message
			out.JobName, out.Namespace = pr.Known.JobName, pr.Known.Namespace
			log.Info("push build already dispatched", "build", id)
			return out, nil
		}
		log.Error("push build not started", "build", id, "err", err)
		if pr.Kind == Conflict {
			// Not closed on the callback: the id names another, real build.
			out.Status, out.Reason = PushInvalid, pr.Message
			return out, nil
		}
		if !pr.Refused() {
			out.Status, out.Reason = PushFailed, "could not start the build"
			return out, nil
		}
		out.Status, out.Reason, out.Fields = PushInvalid, pr.Message, pr.Fields
		if pr.Kind == NoAccess {
			// The request's fields are not the service's to fix.
			out.Fields = nil
		}
		return out, s.closeReserved(reserved, id, callback.Failed, pr.Message)
	}
	out.Status, out.JobName, out.Namespace = PushQueued, h.Name, h.Namespace
	if h.Created && s.cfg.Supersede {
		return out, func(ctx context.Context) { s.supersede(ctx, id, svc.ServiceID, p.Branch, "") }
	}
	return out, nil
}

// closeReserved returns what gives a BuildJob that service-cloud-api
// created for this push, and that dispatch will not build, its terminal
// status, so it does not stay queued forever; nil for builds from the
// static file, which have no such row.
func (s *Service) closeReserved(reserved bool, id string, status callback.Status, reason string) func(context.Context) {
	if !reserved {
		return nil
	}
	return func(ctx context.Context) {
		if err := s.report(ctx, id, status, "", reason, ""); err != nil {
			s.logger(ctx).Warn("could not report an unbuilt build", "build", id, "status", status, "err", err)
		}
	}
}

// supersede keeps only the newest unfinished build of a service and branch.
// The executor lists them oldest first by push time, so a push delivered
// late (or redelivered) lands in its real place: the builds before the new
// one are canceled; if a newer one is already building, the new one is.
// It runs after the push is answered, within FollowUpTimeout; what it
// cannot do, the reaper's next round does (Reap reconciles every branch).
//
// Within one dispatch, supersedes of one service and branch do not overlap:
// a burst of pushes to a branch would otherwise each list, and each cancel,
// all the builds before it. While one runs, the others only ask it to look
// again, and it does once more when it is done (the newest build wins
// either way; builds it does not see, the reaper's round reconciles).
func (s *Service) supersede(ctx context.Context, newID, serviceID, branch, callbackBase string) {
	g := s.superseding.enter(serviceID + "\x00" + branch)
	if g == nil {
		return
	}
	for {
		s.supersedeOnce(ctx, newID, serviceID, branch, callbackBase)
		if !s.superseding.again(g) {
			return
		}
		// Whichever build asked last, the list decides what is newest.
		newID = ""
	}
}

func (s *Service) supersedeOnce(ctx context.Context, newID, serviceID, branch, callbackBase string) {
	log := s.logger(ctx)
	ids, err := s.exec.Active(ctx, serviceID, branch)
	if err != nil {
		log.Warn("supersede: cannot list active builds; the reaper will", "service", serviceID, "branch", branch, "err", err)
		return
	}
	if newID == "" && len(ids) > 0 {
		newID = ids[len(ids)-1]
	}
	at := slices.Index(ids, newID)
	if at < 0 {
		// The new build is not among the active ones (already finished?);
		// its position is unknown, so nothing is known to be older.
		log.Warn("supersede: new build not among active builds; nothing canceled", "build", newID, "service", serviceID)
		return
	}
	newest := ids[len(ids)-1]
	stale := ids[:at]
	if newest != newID {
		// An older push arrived after a newer one: it is the stale one.
		stale = []string{newID}
	}
	s.cancelStale(ctx, stale, newest, serviceID, branch, callbackBase)
}

func (s *Service) cancelStale(ctx context.Context, stale []string, newest, serviceID, branch, callbackBase string) int {
	log := s.logger(ctx)
	n := 0
	for _, id := range stale {
		reason := "superseded by build " + newest + " (a newer push to " + branch + ")"
		if _, err := s.cancel(ctx, id, reason, callbackBase); err != nil && !errors.Is(err, executor.ErrNotFound) {
			log.Warn("supersede: cancel failed", "build", id, "by", newest, "err", err)
			continue
		}
		n++
		log.Info("build superseded", "build", id, "by", newest, "service", serviceID, "branch", branch)
	}
	return n
}

// PushBuildID is the build id for one service's build of a push. It is a
// pure function of the delivery (or, for a caller that sends no delivery
// id, of the repository and commit) and the service, so a redelivery
// resolves to the build the first delivery started.
func PushBuildID(p webhook.Push, serviceID string) string {
	key := "delivery\x00" + p.DeliveryID
	if p.DeliveryID == "" {
		key = "commit\x00" + p.Owner + "/" + p.Repo + "\x00" + p.After
	}
	sum := sha256.Sum256([]byte(key + "\x00" + serviceID))
	return "gh-" + p.After[:7] + "-" + hex.EncodeToString(sum[:6])
}

// groups serializes work per key: enter returns nil when the key is busy
// (and marks it to be done again), again reports whether someone asked
// while the holder worked, and releases the key when nobody did.
type groups struct {
	mu   sync.Mutex
	busy map[string]*group
}

type group struct {
	key     string
	pending bool
}

func (g *groups) enter(key string) *group {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.busy == nil {
		g.busy = map[string]*group{}
	}
	if cur, ok := g.busy[key]; ok {
		cur.pending = true
		return nil
	}
	cur := &group{key: key}
	g.busy[key] = cur
	return cur
}

func (g *groups) again(cur *group) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if cur.pending {
		cur.pending = false
		return true
	}
	delete(g.busy, cur.key)
	return false
}
