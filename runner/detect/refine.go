package detect

import (
	"fmt"
	"slices"
)

// Hints are what a planner found out about the image it plans, for Refine.
// The planner only reports them; the pipeline asks detection to apply them.
type Hints struct {
	// NixpacksPlan is the output of `nixpacks plan --format json`.
	NixpacksPlan []byte `json:"-"`
	// StartCommand is what the image starts with, when the planner chose it
	// (the service's START_COMMAND, or a template's own); StartOrigin names it.
	StartCommand string `json:"startCommand,omitempty"`
	StartOrigin  string `json:"startOrigin,omitempty"`
	// Port is where the image listens when the planner knows it for certain
	// (a server config it wrote), used when the start command tells nothing.
	Port       int    `json:"port,omitempty"`
	PortSource string `json:"portSource,omitempty"`
}

// Refine applies a planner's hints to r: the Nixpacks plan first, then the
// start command, whose stated port (or $PORT, which every planner sets to
// DefaultPort) replaces the one detected from the manifests. The framework
// label stays.
func Refine(r Result, h Hints) Result {
	if h.NixpacksPlan != nil {
		r = RefineWithNixpacksPlan(r, h.NixpacksPlan)
	}
	if h.StartCommand != "" {
		var decided bool
		if r, decided = applyStart(r, h.StartCommand, nonEmpty(h.StartOrigin, "start command"), h.Port == 0); decided {
			return r
		}
	}
	if h.Port > 0 {
		p := h.Port
		r.Reasons = append(slices.Clone(r.Reasons), fmt.Sprintf("port %d: %s", p, h.PortSource))
		r.Port, r.PortSource = &p, h.PortSource
	}
	return r
}
