package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"

	"github.com/alternatefutures/af-builder/functions/dispatch/buildreq"
	"github.com/alternatefutures/af-builder/functions/dispatch/githubapp"
	"github.com/alternatefutures/af-builder/functions/dispatch/subscriptions"
	"github.com/alternatefutures/af-builder/functions/dispatch/webhook"
	"github.com/alternatefutures/af-builder/shared/callback"
)

// WebhookResponse answers a push delivery. A redelivery gets the same
// answer, since it maps onto the same builds.
type WebhookResponse struct {
	Status string         `json:"status"`
	Reason string         `json:"reason,omitempty"`
	Builds []WebhookBuild `json:"builds,omitempty"`
}

// WebhookBuild is what happened for one service.
type WebhookBuild struct {
	ServiceID  string `json:"serviceId"`
	BuildJobID string `json:"buildJobId"`
	// Status is queued, skipped, invalid or failed.
	Status    string   `json:"status"`
	JobName   string   `json:"jobName,omitempty"`
	Namespace string   `json:"namespace,omitempty"`
	Reason    string   `json:"reason,omitempty"`
	Fields    []string `json:"fields,omitempty"`
}

func (s *Server) webhook(w http.ResponseWriter, r *http.Request) {
	log := s.logger(r.Context())
	d, err := webhook.Read(w, r, s.cfg.WebhookSecret, s.cfg.MaxWebhookBytes)
	switch {
	case errors.Is(err, webhook.ErrTooLarge):
		// GitHub does not redeliver a refused delivery by itself: an operator must.
		log.Error("webhook refused: body too large", "limit", s.cfg.MaxWebhookBytes, "content_length", r.ContentLength)
		writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{Error: fmt.Sprintf("body exceeds %d bytes", s.cfg.MaxWebhookBytes)})
		return
	case errors.Is(err, webhook.ErrSignature):
		log.Warn("webhook refused: bad or missing signature")
		writeJSON(w, http.StatusUnauthorized, errorBody{Error: "invalid or missing X-Hub-Signature-256"})
		return
	case err != nil:
		writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error()})
		return
	}
	log = log.With("event", d.Event)
	switch d.Event {
	case "ping":
		writeJSON(w, http.StatusOK, WebhookResponse{Status: "pong"})
		return
	case "push":
	default:
		log.Info("webhook ignored", "reason", "event not handled")
		writeJSON(w, http.StatusAccepted, WebhookResponse{Status: "ignored", Reason: "event " + d.Event + " is not handled"})
		return
	}

	p, err := webhook.ParsePush(d.ID, d.Payload)
	if err != nil {
		log.Warn("push refused", "err", err)
		writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error()})
		return
	}
	log = log.With("repo", p.Owner+"/"+p.Repo, "ref", p.Ref, "commit", p.After)
	if reason := p.SkipReason(); reason != "" {
		log.Info("push skipped", "reason", reason)
		writeJSON(w, http.StatusOK, WebhookResponse{Status: "skipped", Reason: reason})
		return
	}

	// GitHub waits 10 s; what is not done by the budget is reported as
	// failed, and a redelivery (same ids) picks it up.
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.WebhookBudget)
	defer cancel()
	ctx = withLogger(ctx, log)

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
		writeJSON(w, http.StatusBadGateway, errorBody{Error: "could not look up the services tracking this branch"})
		return
	}
	if len(services) == 0 {
		log.Info("push skipped", "reason", "no service tracks this branch")
		writeJSON(w, http.StatusOK, WebhookResponse{Status: "skipped", Reason: "no service tracks " + p.Owner + "/" + p.Repo + "@" + p.Branch})
		return
	}

	tokens := newRepoTokens(s.gh)
	resp := WebhookResponse{Status: "accepted"}
	retryable := false
	// Every build is submitted before any callback is posted: closing
	// unbuilt BuildJobs and superseding can each wait the whole callback
	// timeout on a slow service-cloud-api, and must not spend the budget a
	// later service needs to start (GitHub does not redeliver by itself).
	var followUps []func()
	for _, svc := range services {
		b, then := s.pushBuild(ctx, p, svc, tokens)
		resp.Builds = append(resp.Builds, b)
		if b.Status == "failed" {
			retryable = true
		}
		if then != nil {
			followUps = append(followUps, then)
		}
	}
	for _, f := range followUps {
		f()
	}
	code := http.StatusAccepted
	if retryable {
		// GitHub marks the delivery failed, and redelivering it is safe.
		code, resp.Status = http.StatusServiceUnavailable, "partial"
	}
	writeJSON(w, code, resp)
}

// pushBuild starts (or finds) one service's build for a push. The callback
// work that follows from it (closing a reserved BuildJob it will not build,
// superseding older builds) is returned for the caller to run once every
// service's build has been submitted.
func (s *Server) pushBuild(ctx context.Context, p webhook.Push, svc subscriptions.Service, tokens *repoTokens) (WebhookBuild, func()) {
	log := s.logger(ctx).With("service", svc.ServiceID)
	id := svc.BuildJobID
	reserved := id != ""
	if !reserved {
		id = PushBuildID(p, svc.ServiceID)
	}
	out := WebhookBuild{ServiceID: svc.ServiceID, BuildJobID: id}

	if err := svc.Validate(); err != nil {
		out.Status, out.Reason = "invalid", err.Error()
		log.Warn("service not built: invalid configuration", "build", id, "err", err)
		return out, s.closeReserved(ctx, reserved, id, callback.Failed, "build configuration is invalid: "+err.Error())
	}
	if ok, why := webhook.Touches(p, svc.RootDirectory, svc.WatchPaths); !ok {
		out.Status, out.Reason = "skipped", why
		log.Info("service skipped", "build", id, "reason", why)
		return out, s.closeReserved(ctx, reserved, id, callback.Canceled, "skipped: "+why)
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
		ServiceID:      svc.ServiceID,
		Branch:         p.Branch,
		PushedAt:       p.PushedAt,
		DefaultBranch:  p.DefaultBranch,
	}
	h, err := s.start(ctx, req, "push", tokens)
	if err != nil {
		var inv *buildreq.InvalidError
		var then func()
		switch {
		case errors.As(err, &inv):
			out.Status, out.Reason, out.Fields = "invalid", inv.Error(), inv.Fields()
			then = s.closeReserved(ctx, reserved, id, callback.Failed, inv.Error())
		case errors.Is(err, githubapp.ErrNoAccess):
			out.Status, out.Reason = "invalid", "the GitHub App installation cannot access this repository"
			then = s.closeReserved(ctx, reserved, id, callback.Failed, out.Reason)
		default:
			out.Status, out.Reason = "failed", "could not start the build"
		}
		log.Error("push build not started", "build", id, "err", err)
		return out, then
	}
	out.Status, out.JobName, out.Namespace = "queued", h.Name, h.Namespace
	if h.Created && s.cfg.Supersede {
		return out, func() { s.supersede(ctx, id, svc.ServiceID, p.Branch, "") }
	}
	return out, nil
}

// closeReserved returns what gives a BuildJob that service-cloud-api
// created for this push, and that dispatch will not build, its terminal
// status, so it does not stay queued forever; nil for builds from the
// static file, which have no such row.
func (s *Server) closeReserved(ctx context.Context, reserved bool, id string, status callback.Status, reason string) func() {
	if !reserved {
		return nil
	}
	return func() {
		if err := s.report(ctx, id, status, reason, ""); err != nil {
			s.logger(ctx).Warn("could not report an unbuilt build", "build", id, "status", status, "err", err)
		}
	}
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
