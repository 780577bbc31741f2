package detect

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// Bounds on expanding workspace globs: a monorepo is listed, never walked.
const (
	maxWorkspacePackages = 200 // packages reported
	maxWorkspaceReads    = 60  // package.json files read to label packages
	maxGlobDirs          = 2000
	maxGlobDepth         = 5
	maxGlobSegments      = 16
)

// parsePnpmWorkspace reads the packages list of pnpm-workspace.yaml, block
// or flow style, without a YAML library: the file is one list of globs.
func parsePnpmWorkspace(data []byte) []string {
	var out []string
	lines := strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		line := stripYAMLComment(lines[i])
		if !strings.HasPrefix(line, "packages:") {
			continue
		}
		rest := strings.TrimSpace(strings.TrimPrefix(line, "packages:"))
		if strings.HasPrefix(rest, "[") {
			parts := []string{rest}
			for !strings.Contains(parts[len(parts)-1], "]") && i+1 < len(lines) {
				i++
				parts = append(parts, stripYAMLComment(lines[i]))
			}
			flow := strings.Join(parts, " ")
			flow, _, _ = strings.Cut(strings.TrimPrefix(flow, "["), "]")
			for _, item := range strings.Split(flow, ",") {
				if item = unquoteYAML(item); item != "" {
					out = append(out, item)
				}
			}
			return out
		}
		for i+1 < len(lines) {
			next := stripYAMLComment(lines[i+1])
			trimmed := strings.TrimSpace(next)
			if trimmed == "" {
				i++
				continue
			}
			indented := next[0] == ' ' || next[0] == '\t'
			if !strings.HasPrefix(trimmed, "-") {
				if !indented {
					break
				}
				i++
				continue
			}
			i++
			if item := unquoteYAML(strings.TrimPrefix(trimmed, "-")); item != "" {
				out = append(out, item)
			}
		}
		return out
	}
	return out
}

func stripYAMLComment(line string) string {
	line = strings.TrimRight(line, " \t\r")
	if strings.HasPrefix(strings.TrimSpace(line), "#") {
		return ""
	}
	var quote rune
	for i, c := range line {
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#' && i > 0 && (line[i-1] == ' ' || line[i-1] == '\t'):
			return strings.TrimRight(line[:i], " \t")
		}
	}
	return line
}

func unquoteYAML(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
		s = s[1 : len(s)-1]
	}
	return strings.TrimSpace(s)
}

// monorepo tells whether the directory is a JavaScript monorepo root and
// which packages it holds.
func (d *detection) monorepo(pm string) *Monorepo {
	t := d.t
	var patterns []string
	tool := ""
	if t.isFile("pnpm-workspace.yaml") {
		if data, ok := t.manifest("pnpm-workspace.yaml"); ok {
			patterns, _ = safeParse(func() ([]string, error) { return parsePnpmWorkspace(data), nil })
			tool = "pnpm-workspaces"
			d.addf("pnpm-workspace.yaml -> pnpm workspaces")
		}
	}
	if tool == "" && d.pkg != nil && d.pkg.HasWorkspaces {
		patterns = d.pkg.Workspaces
		switch pm {
		case "yarn", "yarn-berry":
			tool = "yarn-workspaces"
		case "bun":
			tool = "bun-workspaces"
		default:
			tool = "npm-workspaces"
		}
		d.addf("package.json workspaces -> %s", tool)
	}
	marker := ""
	switch {
	case t.isFile("turbo.json"):
		tool, marker = "turborepo", "turbo.json"
	case t.isFile("nx.json"):
		tool, marker = "nx", "nx.json"
		if len(patterns) == 0 {
			patterns = []string{"apps/*", "libs/*", "packages/*"}
		}
	case t.isFile("lerna.json"):
		tool, marker = "lerna", "lerna.json"
		if len(patterns) == 0 {
			patterns = []string{"packages/*"}
			if data, ok := t.manifest("lerna.json"); ok {
				if m, err := decodeJSONObject(data); err == nil {
					if ps := anyStrings(m["packages"]); len(ps) > 0 {
						patterns = ps
					}
				}
			}
		}
	}
	if marker != "" {
		d.addf("%s -> %s", marker, tool)
	}
	if tool == "" {
		return nil
	}
	m := &Monorepo{Tool: tool, Packages: d.expandWorkspaces(patterns, tool == "nx")}
	if len(m.Packages) == 0 {
		m.Packages = []string{}
		if len(patterns) > 0 {
			d.addf("workspace globs %s match no package", joinFirst(patterns, 5))
		}
	}
	for i, dir := range m.Packages {
		if i >= maxWorkspaceReads {
			break
		}
		if fw := d.packageFramework(dir); fw != "" {
			if m.Frameworks == nil {
				m.Frameworks = map[string]string{}
			}
			m.Frameworks[dir] = fw
		}
	}
	return m
}

// joinFirst joins at most n of list, saying how many more there are.
func joinFirst(list []string, n int) string {
	if len(list) <= n {
		return strings.Join(list, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(list[:n], ", "), len(list)-n)
}

// packageFramework labels one workspace package from its package.json.
func (d *detection) packageFramework(dir string) string {
	data, ok := d.t.source(path.Join(dir, "package.json"))
	if !ok {
		return ""
	}
	p, err := safeParse(func() (*packageJSON, error) { return parsePackageJSON(data) })
	if err != nil {
		return ""
	}
	vite := false
	for _, c := range viteConfigs {
		if d.t.isFile(path.Join(dir, c)) {
			vite = true
			break
		}
	}
	fw, _, _ := nodeFramework(p, vite)
	return fw
}

// expandWorkspaces expands workspace globs ("apps/*", "packages/**",
// "!**/test") into the sorted directories that hold a package.json
// (or, for Nx, a project.json).
func (d *detection) expandWorkspaces(patterns []string, nx bool) []string {
	include := map[string]bool{}
	var exclude []string
	budget := maxGlobDirs
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		p = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(p), "./"), "/")
		if p == "" || path.IsAbs(p) || slices.Contains(strings.Split(p, "/"), "..") {
			if p != "" {
				d.addf("workspace glob %q leaves the directory, ignored", p)
			}
			continue
		}
		segs := collapseGlobstars(strings.Split(p, "/"))
		if len(segs) > maxGlobSegments {
			d.addf("workspace glob %q has too many parts, ignored", p)
			continue
		}
		if neg {
			exclude = append(exclude, strings.Join(segs, "/"))
			continue
		}
		for _, dir := range d.globDirs(".", segs, 0, &budget) {
			include[dir] = true
		}
	}
	var out []string
	for _, dir := range sortedKeys(include) {
		if matchesAny(dir, exclude) {
			continue
		}
		if d.t.isFile(path.Join(dir, "package.json")) || nx && d.t.isFile(path.Join(dir, "project.json")) {
			out = append(out, dir)
		}
		if len(out) == maxWorkspacePackages {
			d.addf("more than %d workspace packages: only the first are listed", maxWorkspacePackages)
			break
		}
	}
	if budget <= 0 {
		d.addf("workspace globs match too many directories: stopped after %d", maxGlobDirs)
	}
	return out
}

func (d *detection) globDirs(dir string, segs []string, depth int, budget *int) []string {
	if *budget <= 0 || d.t.ctx.Err() != nil {
		return nil
	}
	*budget--
	if len(segs) == 0 {
		if dir == "." {
			return nil
		}
		return []string{dir}
	}
	seg := segs[0]
	switch {
	case seg == "**":
		out := d.globDirs(dir, segs[1:], depth, budget)
		if depth >= maxGlobDepth {
			return out
		}
		for _, e := range d.t.list(dir) {
			if e.isDir && !skipDirs[e.name] && !strings.HasPrefix(e.name, ".") {
				out = append(out, d.globDirs(path.Join(dir, e.name), segs, depth+1, budget)...)
			}
		}
		return out
	case strings.ContainsAny(seg, "*?["):
		var out []string
		for _, e := range d.t.list(dir) {
			if !e.isDir || e.name == "node_modules" || strings.HasPrefix(e.name, ".") {
				continue
			}
			if ok, _ := path.Match(seg, e.name); ok {
				out = append(out, d.globDirs(path.Join(dir, e.name), segs[1:], depth+1, budget)...)
			}
		}
		return out
	default:
		next := path.Join(dir, seg)
		if !d.t.isDir(next) {
			return nil
		}
		return d.globDirs(next, segs[1:], depth+1, budget)
	}
}

// collapseGlobstars folds "**/**" into "**", which matches the same and
// keeps matching from going combinatorial.
func collapseGlobstars(segs []string) []string {
	out := segs[:0:0]
	for _, s := range segs {
		if s == "**" && len(out) > 0 && out[len(out)-1] == "**" {
			continue
		}
		out = append(out, s)
	}
	return out
}

// matchesAny matches dir against negated workspace globs, where ** spans directories.
func matchesAny(dir string, globs []string) bool {
	for _, g := range globs {
		if globMatch(strings.Split(g, "/"), strings.Split(dir, "/")) {
			return true
		}
	}
	return false
}

func globMatch(pat, parts []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(parts); i++ {
				if globMatch(pat[1:], parts[i:]) {
					return true
				}
			}
			return false
		}
		if len(parts) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], parts[0]); !ok {
			return false
		}
		pat, parts = pat[1:], parts[1:]
	}
	return len(parts) == 0
}
