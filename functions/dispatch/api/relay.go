package api

import (
	"net/http"

	"github.com/alternatefutures/af-builder/functions/dispatch/relay"
	"github.com/alternatefutures/af-builder/functions/dispatch/webhook"
)

// relayDelivery hands a verified delivery to the relay when it wants the
// event. Only deliveries whose signature checked out are relayed, so the
// relay cannot be used to send anything GitHub did not.
func (s *Server) relayDelivery(r *http.Request, d webhook.Delivery) {
	if s.cfg.Relay.Wants(d.Event) {
		s.cfg.Relay.Forward(r.Header, d.Raw)
	}
}

// healthBody answers GET /healthz; Relay counts relayed and failed
// deliveries since start when a relay is configured.
type healthBody struct {
	Status string       `json:"status"`
	Relay  *relay.Stats `json:"relay,omitempty"`
}

func (s *Server) health() healthBody {
	h := healthBody{Status: "ok"}
	if s.cfg.Relay != nil {
		st := s.cfg.Relay.Stats()
		h.Relay = &st
	}
	return h
}
