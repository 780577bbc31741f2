package detect

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// maxPlanBytes caps the plan we parse; real plans are a few KiB.
const maxPlanBytes = 4 << 20

// nixpacksPlan is the part of `nixpacks plan --format json` detection uses.
// Start lives at the top level in current Nixpacks and under phases in old ones.
type nixpacksPlan struct {
	Providers []string                   `json:"providers"`
	Variables map[string]json.RawMessage `json:"variables"`
	Phases    map[string]json.RawMessage `json:"phases"`
	Start     *struct {
		Cmd string `json:"cmd"`
	} `json:"start"`
}

func parseNixpacksPlan(data []byte) (nixpacksPlan, error) {
	var p nixpacksPlan
	if len(data) > maxPlanBytes {
		return p, fmt.Errorf("larger than %d MiB", maxPlanBytes>>20)
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return nixpacksPlan{}, jsonError(err)
	}
	return p, nil
}

func (p nixpacksPlan) startCmd() string {
	if p.Start != nil && p.Start.Cmd != "" {
		return p.Start.Cmd
	}
	var old struct {
		Cmd string `json:"cmd"`
	}
	if raw, ok := p.Phases["start"]; ok && json.Unmarshal(raw, &old) == nil {
		return old.Cmd
	}
	return ""
}

// RefineWithNixpacksPlan applies the JSON printed by `nixpacks plan DIR --format json`: it may fill Port (when the
// manifests gave none, e.g. from variables.PORT or the start command) and StartCommand (from start.cmd or
// phases.start.cmd), and never changes Framework. Bad JSON leaves r unchanged and adds a reason.
func RefineWithNixpacksPlan(r Result, planJSON []byte) Result {
	// r's slices are the caller's: never append into their backing array.
	r.Reasons = slices.Clone(r.Reasons)
	if r.Reasons == nil {
		r.Reasons = []string{}
	}
	plan, err := safeParse(func() (nixpacksPlan, error) { return parseNixpacksPlan(planJSON) })
	if err != nil {
		r.Reasons = append(r.Reasons, fmt.Sprintf("nixpacks plan: %v, ignored", err))
		return r
	}
	if len(plan.Providers) > 0 {
		r.Reasons = append(r.Reasons, "nixpacks plan providers: "+joinFirst(plan.Providers, 5))
	}
	cmd := plan.startCmd()
	if cmd != "" && r.StartCommand == "" && len(cmd) <= maxStartCommand {
		r.StartCommand = cmd
		r.Reasons = append(r.Reasons, fmt.Sprintf("nixpacks plan start command: %s", cmd))
	}
	if r.Port != nil {
		return r
	}
	if raw, ok := plan.Variables["PORT"]; ok {
		var s string
		var n json.Number
		if json.Unmarshal(raw, &s) != nil && json.Unmarshal(raw, &n) == nil {
			s = n.String()
		}
		if p, ok := parsePort(strings.TrimSpace(s)); ok {
			r.Port, r.PortSource = &p, "nixpacks plan variables.PORT"
			r.Reasons = append(r.Reasons, fmt.Sprintf("port %d: nixpacks plan variables.PORT", p))
			return r
		}
	}
	if cmd != "" {
		d := &detection{}
		l := d.analyzeCommand(cmd, "nixpacks start command")
		if p, src := l.resolve(DefaultPort, "PORT set by the runner"); p > 0 {
			r.Port, r.PortSource = &p, src
			r.Reasons = append(r.Reasons, fmt.Sprintf("port %d: %s", p, src))
		}
	}
	return r
}

// ApplyStartCommand accounts for the service's START_COMMAND override, which
// is what will really run in the image: a port it states (--port 3000, or
// $PORT, which the runner sets to DefaultPort) replaces the one detected
// from the manifests. The framework label stays.
func ApplyStartCommand(r Result, cmd string) Result {
	if cmd == "" {
		return r
	}
	r, _ = applyStart(r, cmd, "START_COMMAND", true)
	return r
}

// applyStart records cmd as the start command; origin names where it came
// from. With say set, a command that tells nothing about its port says so.
// It reports whether the command decided the port.
func applyStart(r Result, cmd, origin string, say bool) (Result, bool) {
	r.Reasons = slices.Clone(r.Reasons)
	if r.Reasons == nil {
		r.Reasons = []string{}
	}
	r.StartCommand = cmd
	d := &detection{}
	l := d.analyzeCommand(cmd, origin)
	p, src := l.resolve(DefaultPort, "PORT set by the runner")
	if p <= 0 {
		if say {
			r.Reasons = append(r.Reasons, origin+" says nothing about its port: keeping the detected one")
		}
		return r, false
	}
	if src == "" {
		src = origin
	}
	r.Port, r.PortSource = &p, src
	r.Reasons = append(r.Reasons, fmt.Sprintf("port %d: %s %q (%s)", p, origin, cmd, src))
	return r, true
}
