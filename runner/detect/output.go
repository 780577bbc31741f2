package detect

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// maxHintPackages is how many packages the monorepo hint names.
const maxHintPackages = 8

// LogLines is the result for the build log, most important first; the runner
// prints each with a "detect: " prefix.
func (r Result) LogLines() []string {
	var b strings.Builder
	b.WriteString("detected " + r.Framework)
	if r.Language != "" && r.Language != r.Framework {
		b.WriteString(" (" + r.Language + ")")
	}
	if r.Port != nil {
		fmt.Fprintf(&b, ", port %d from %s", *r.Port, r.PortSource)
	} else {
		b.WriteString(", no port detected")
	}
	if r.PackageManager != "" {
		b.WriteString(", package manager " + r.PackageManager)
		if r.Lockfile != "" {
			b.WriteString(" (" + r.Lockfile + ")")
		}
	}
	lines := []string{b.String()}
	if r.HasDockerfile {
		lines = append(lines, "the repository has a Dockerfile (the plan phase says which planner builds)")
	}
	if len(r.Versions) > 0 {
		var vs []string
		for _, k := range sortedKeys(r.Versions) {
			vs = append(vs, k+" "+r.Versions[k])
		}
		lines = append(lines, "versions: "+strings.Join(vs, ", "))
	}
	if r.StartCommand != "" {
		lines = append(lines, "start command: "+r.StartCommand)
	}
	if hint := r.Monorepo.hint(r.Framework); hint != "" {
		lines = append(lines, hint)
	}
	for _, reason := range r.Reasons {
		lines = append(lines, "- "+reason)
	}
	return lines
}

var toolNames = map[string]string{
	"pnpm-workspaces": "pnpm workspaces", "npm-workspaces": "npm workspaces", "yarn-workspaces": "Yarn workspaces",
	"bun-workspaces": "Bun workspaces", "turborepo": "Turborepo", "nx": "Nx", "lerna": "Lerna",
}

// hint tells a user who forgot ROOT_DIRECTORY what to set.
func (m *Monorepo) hint(rootFramework string) string {
	if m == nil {
		return ""
	}
	tool := nonEmpty(toolNames[m.Tool], m.Tool)
	if len(m.Packages) == 0 {
		return fmt.Sprintf("this directory is set up as a monorepo (%s) but no workspace packages were found", tool)
	}
	names := make([]string, 0, min(len(m.Packages), maxHintPackages))
	for i, p := range m.Packages {
		if i == maxHintPackages {
			names = append(names, fmt.Sprintf("and %d more", len(m.Packages)-maxHintPackages))
			break
		}
		if fw := m.Frameworks[p]; fw != "" {
			p += " (" + fw + ")"
		}
		names = append(names, p)
	}
	list := strings.Join(names, ", ")
	switch rootFramework {
	case "node", "bun", "unknown", "dockerfile":
		return fmt.Sprintf("this directory is a monorepo (%s) with packages %s: set ROOT_DIRECTORY to the one to deploy", tool, list)
	}
	return fmt.Sprintf("this directory is a monorepo (%s) with packages %s: building its root app; set ROOT_DIRECTORY to deploy a package instead", tool, list)
}

// PrintJSON writes r as indented JSON in the field order of Result (map keys
// sorted), the output of `runner detect <dir>`.
func PrintJSON(w io.Writer, r Result) error {
	if r.Reasons == nil {
		r.Reasons = []string{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	// Start commands are full of && and <: keep them readable.
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}
