package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/alternatefutures/af-builder/functions/dispatch/builds"
	"github.com/alternatefutures/af-builder/functions/dispatch/webhook"
)

// WebhookResponse answers a push delivery. A redelivery gets the same
// answer, since it maps onto the same builds.
type WebhookResponse struct {
	Status string         `json:"status"`
	Reason string         `json:"reason,omitempty"`
	Builds []WebhookBuild `json:"builds,omitempty"`
}

// WebhookBuild is what happened for one service.
type WebhookBuild = builds.PushBuild

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

	// What is not done within the request's budget is reported as failed,
	// and a redelivery (same ids) picks it up.
	res, err := s.core.HandlePush(withLogger(r.Context(), log), p)
	if err != nil {
		writeJSON(w, http.StatusBadGateway, errorBody{Error: builds.ErrLookup.Error()})
		return
	}
	if !res.Tracked {
		log.Info("push skipped", "reason", "no service tracks this branch")
		writeJSON(w, http.StatusOK, WebhookResponse{Status: "skipped", Reason: "no service tracks " + p.Owner + "/" + p.Repo + "@" + p.Branch})
		return
	}
	resp := WebhookResponse{Status: "accepted", Builds: res.Builds}
	code := http.StatusAccepted
	if res.Retryable {
		// GitHub marks the delivery failed, and redelivering it is safe.
		code, resp.Status = http.StatusServiceUnavailable, "partial"
	}
	writeJSON(w, code, resp)
}
