// Package detect reads a checked-out source tree and says what it is: the
// framework, the port the deployed app will answer on, the package manager,
// the declared runtime versions, whether it is a monorepo, and why.
//
// It reads only the few files that decide this (manifests at the root and,
// for monorepos, the workspace packages' manifests), never walks the tree,
// never follows a symlink out of it, and caps every read, so a hostile or
// broken repo gives "unknown" with a reason rather than a crash or a hang.
//
// # Ports
//
// The port is the one the app's start command actually listens on in the
// image the runner builds:
//
//   - Built with Nixpacks, the container gets PORT=DefaultPort (8080) from the
//     runner. Servers that honour PORT (next start, Nuxt/Nitro, remix-serve,
//     react-router-serve, the Astro and SvelteKit node servers, Bun.serve,
//     rails server, gunicorn, Phoenix, Nixpacks' own nginx and Caddy for PHP,
//     static sites and Vite SPAs, Spring Boot started with
//     -Dserver.port=$PORT, and code that reads PORT) answer there.
//   - Servers that ignore PORT answer on their own default: vite preview 4173,
//     astro preview 4321, ng serve 4200, uvicorn/FastAPI 8000, Flask 5000,
//     Rocket 8000, Deno.serve 8000, Vapor 8080, and ASP.NET Core 3000
//     (Nixpacks sets ASPNETCORE_URLS=http://0.0.0.0:3000).
//   - A port the repo states wins: --port/-p/--bind in the start script,
//     Procfile or nixpacks.toml, a literal listen(3000) in the entry file,
//     Rocket.toml. (Spring's server.port does not: Nixpacks passes
//     -Dserver.port=$PORT, which overrides it.)
//   - Built from the repo's Dockerfile, the runner sets no PORT: the CMD's
//     stated port, then ENV PORT for servers that read it, then EXPOSE, then
//     the framework's own default (Next 3000, Django runserver 8000, Rails
//     3000, Spring server.port or 8080, ...) decide.
//
// serverTools (startcmd.go) and each detector's frameworkDefault calls carry
// a one-line why for every default.
package detect

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"unicode"
)

// Result is what the runner reports and prints; JSON field names are part of the `runner detect` output.
type Result struct {
	Framework      string            `json:"framework"`            // e.g. "next", "django", "go", "dockerfile", "unknown"
	Language       string            `json:"language"`             // e.g. "node", "python", "go"; "" when unknown
	Port           *int              `json:"port"`                 // nil when nothing sensible
	PortSource     string            `json:"portSource,omitempty"` // e.g. "Dockerfile EXPOSE", "package.json scripts.start (--port 4000)", "framework default (vite preview)"
	HasDockerfile  bool              `json:"hasDockerfile"`        // a Dockerfile in the directory (the runner then builds with it)
	PackageManager string            `json:"packageManager,omitempty"`
	Lockfile       string            `json:"lockfile,omitempty"`
	Versions       map[string]string `json:"versions,omitempty"` // e.g. {"node": "20", "python": "3.12"}
	Monorepo       *Monorepo         `json:"monorepo,omitempty"`
	Reasons        []string          `json:"reasons"`                // human lines: "package.json depends on next -> next"
	StartCommand   string            `json:"startCommand,omitempty"` // only when known (Procfile, nixpacks.toml, nixpacks plan)
}

// Monorepo describes a directory that holds several deployable packages.
type Monorepo struct {
	Tool     string   `json:"tool"`     // "pnpm-workspaces", "npm-workspaces", "yarn-workspaces", "bun-workspaces", "turborepo", "nx", "lerna"
	Packages []string `json:"packages"` // workspace package dirs, relative, sorted
	// Frameworks maps the packages whose framework could be told to it, so the
	// hint can say which one is the web app.
	Frameworks map[string]string `json:"frameworks,omitempty"`
}

// Detect reads dir (the checked-out ROOT_DIRECTORY) and never returns an error for bad repo content:
// malformed files become Framework "unknown" (or a less specific label) with a reason. The error is only for
// ctx cancellation or dir itself missing/unreadable. It stays inside dir: symlinks that resolve outside are ignored.
func Detect(ctx context.Context, dir string) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Result{}, fmt.Errorf("detect: %w", err)
	}
	defer root.Close()
	if _, err := root.Stat("."); err != nil {
		return Result{}, fmt.Errorf("detect: %w", err)
	}
	d := &detection{t: newTree(ctx, root)}
	r := d.run()
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	return r, nil
}

// Bounds on what a Result carries, whatever the repo holds: the build log
// and the callback body are small.
const (
	maxVersionLen   = 64
	maxReasons      = 80
	maxReasonLen    = 300
	maxStartCommand = 4096
)

// Tiers rank candidates: the most specific description of the app wins.
const (
	tierMalformed    = 0  // a manifest we could not read
	tierManifestOnly = 5  // a manifest with nothing to run (package.json of dev tools)
	tierStatic       = 10 // plain files a web server serves
	tierLanguage     = 20 // a runnable app in a known language
	tierSPA          = 25 // a front-end build served as static files
	tierFramework    = 30 // a server framework
)

// candidate is one language's reading of the directory.
type candidate struct {
	language  string
	framework string
	tier      int
	// nixpacks: Nixpacks' own provider for this language detects the directory.
	nixpacks bool
	// serve is how the app listens when built by Nixpacks with its default
	// start command; own is how it listens by itself, with no PORT set.
	serve, own   listen
	pm, lockfile string
	versions     map[string]string
	reasons      []string
}

func (c *candidate) setVersion(key, value, from string, d *detection) {
	value = strings.TrimSpace(value)
	if value == "" || c.versions[key] != "" {
		return
	}
	if len(value) > maxVersionLen || strings.ContainsFunc(value, unicode.IsControl) {
		d.addf("%s: %s version is not a version, ignored", from, key)
		return
	}
	if c.versions == nil {
		c.versions = map[string]string{}
	}
	c.versions[key] = value
	d.addf("%s -> %s %s", from, key, value)
}

type detection struct {
	t *tree
	// pkg is the root package.json when it parsed; scripts are its scripts,
	// needed to follow "npm start" wherever a start command appears.
	pkg     *packageJSON
	pkgErr  error
	scripts map[string]string
	tools   map[string]string     // .tool-versions, read once
	scans   map[string]scanResult // source files scanned for their port
	steps   int                   // budget of analyzeCommand
	pending []string
}

func (d *detection) addf(format string, args ...any) {
	d.pending = append(d.pending, fmt.Sprintf(format, args...))
}

// detectors run in Nixpacks' provider order, which breaks ties between
// equally specific candidates the way Nixpacks itself would.
var detectors = []func(*detection) *candidate{
	(*detection).detectCrystal,
	(*detection).detectDotnet,
	(*detection).detectDart,
	(*detection).detectElixir,
	(*detection).detectDeno,
	(*detection).detectClojure,
	(*detection).detectGo,
	(*detection).detectHaskell,
	(*detection).detectJava,
	(*detection).detectPHP,
	(*detection).detectRuby,
	(*detection).detectNode,
	(*detection).detectNim,
	(*detection).detectPython,
	(*detection).detectRust,
	(*detection).detectSwift,
	(*detection).detectStatic,
	(*detection).detectZig,
	(*detection).detectCobol,
	(*detection).detectScala,
	(*detection).detectGleam,
	(*detection).detectErlang,
	(*detection).detectShell,
}

func (d *detection) run() Result {
	r := Result{Framework: "unknown", Reasons: []string{}}
	// package.json scripts are read first: start commands anywhere (Procfile,
	// Dockerfile CMD) may call them.
	d.loadPackageJSON()
	cands := d.candidates()
	if d.t.ctx.Err() != nil {
		return r
	}
	df := d.dockerfile()
	// The runner builds with any Dockerfile the repository has, even one
	// detection cannot read (too large, not UTF-8): that only costs the port
	// hints. A symlinked one counts too, so the plan phase can refuse it with
	// a clear error rather than the build silently going to Nixpacks.
	r.HasDockerfile = df != nil || d.t.hasEntry("Dockerfile")
	switch {
	case df != nil || !r.HasDockerfile:
	case d.t.isSymlink("Dockerfile"):
		d.addf("Dockerfile is a symlink: the build refuses it (it must be a regular file of the repository)")
	default:
		d.addf("Dockerfile present but not readable as text: the runner builds with it; no port hints from it")
	}
	dockerReasons := d.take()
	best := choose(cands)

	d.label(&r, best, cands, r.HasDockerfile)
	r.Reasons = append(r.Reasons, dockerReasons...)
	r.Versions = mergeVersions(best, cands)
	d.port(&r, best, df)
	r.Monorepo = d.monorepo(r.PackageManager)
	r.Reasons = append(r.Reasons, d.take()...)
	r.Reasons = append(r.Reasons, d.t.notes...)
	r.Reasons = tidy(r.Reasons)
	return r
}

// take returns the reasons gathered since the last take.
func (d *detection) take() []string {
	p := d.pending
	d.pending = nil
	return p
}

// candidates runs every detector; each candidate keeps the reasons its
// detector gave.
func (d *detection) candidates() []*candidate {
	var cands []*candidate
	for _, det := range detectors {
		if d.t.ctx.Err() != nil {
			return nil
		}
		d.take()
		if c := det(d); c != nil {
			c.reasons = append(d.take(), c.reasons...)
			cands = append(cands, c)
		}
	}
	d.take()
	return cands
}

// label sets the framework, language and package manager from the chosen
// candidate, and says what else was found.
func (d *detection) label(r *Result, best *candidate, cands []*candidate, hasDockerfile bool) {
	switch {
	case best != nil && (best.tier > tierStatic || !hasDockerfile):
		r.Language = best.language
		r.Framework = nonEmpty(best.framework, "unknown")
		r.PackageManager, r.Lockfile = best.pm, best.lockfile
		r.Reasons = append(r.Reasons, best.reasons...)
		if best.tier == tierMalformed {
			r.Reasons = append(r.Reasons, best.language+" manifest unreadable -> unknown")
		}
	case hasDockerfile:
		// Static files or a manifest with nothing to run beside a Dockerfile:
		// the Dockerfile is what the app is.
		r.Framework = "dockerfile"
		if best != nil {
			r.Language = best.language
			r.PackageManager, r.Lockfile = best.pm, best.lockfile
			r.Reasons = append(r.Reasons, best.reasons...)
		}
		r.Reasons = append(r.Reasons, "Dockerfile and no app framework found -> dockerfile")
	default:
		r.Reasons = append(r.Reasons, "no manifest, Dockerfile or index.html found that says what this is -> unknown")
	}
	for _, c := range cands {
		if c != best {
			r.Reasons = append(r.Reasons, fmt.Sprintf("also found %s (%s), not used: %s was chosen", c.language, nonEmpty(c.framework, "unreadable manifest"), r.Framework))
		}
	}
	if first := firstNixpacks(cands); best != nil && first != nil && first != best && !hasDockerfile {
		r.Reasons = append(r.Reasons, fmt.Sprintf("note: Nixpacks checks %s before %s and may build this as %s; a Dockerfile or ROOT_DIRECTORY avoids that", first.language, best.language, first.language))
	}
}

// port decides the port the deployed app answers on: with the repo's
// Dockerfile the image's own PORT (if any) applies, with Nixpacks the runner's.
func (d *detection) port(r *Result, best *candidate, df *dockerfileInfo) {
	var p int
	var src string
	if df != nil {
		p, src = d.dockerfilePort(df, best).resolve(df.envPORT, "Dockerfile ENV PORT")
	} else {
		p, src = d.nixpacksPort(best, r).resolve(DefaultPort, "PORT set by the runner")
	}
	r.Reasons = append(r.Reasons, d.take()...)
	switch {
	case p > 0:
		r.Port, r.PortSource = &p, src
		r.Reasons = append(r.Reasons, fmt.Sprintf("port %d: %s", p, src))
	case r.Framework != "unknown":
		r.Reasons = append(r.Reasons, "no port found: set one in the service settings")
	}
}

// tidy drops repeated reasons (several detectors may scan the same entry
// file) and bounds their length and number.
func tidy(lines []string) []string {
	seen := make(map[string]bool, len(lines))
	out := make([]string, 0, min(len(lines), maxReasons+1))
	for _, l := range lines {
		if r := []rune(l); len(r) > maxReasonLen {
			l = string(r[:maxReasonLen-3]) + "..."
		}
		if seen[l] {
			continue
		}
		seen[l] = true
		if len(out) == maxReasons {
			out = append(out, "... more reasons left out")
			break
		}
		out = append(out, l)
	}
	return out
}

// choose picks the most specific candidate; ties go to the one Nixpacks checks first.
func choose(cands []*candidate) *candidate {
	var best *candidate
	for _, c := range cands {
		if best == nil || c.tier > best.tier {
			best = c
		}
	}
	return best
}

func firstNixpacks(cands []*candidate) *candidate {
	for _, c := range cands {
		if c.nixpacks {
			return c
		}
	}
	return nil
}

func mergeVersions(best *candidate, cands []*candidate) map[string]string {
	out := map[string]string{}
	if best != nil {
		for k, v := range best.versions {
			out[k] = v
		}
	}
	for _, c := range cands {
		for k, v := range c.versions {
			if _, ok := out[k]; !ok {
				out[k] = v
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// nixpacksPort is how the app listens in an image Nixpacks builds: its
// nixpacks.toml or Procfile start command wins over the provider's own.
func (d *detection) nixpacksPort(best *candidate, r *Result) listen {
	if best == nil {
		return listen{}
	}
	l := best.serve
	if cmd, origin := d.startOverride(); cmd != "" {
		if len(cmd) <= maxStartCommand {
			r.StartCommand = cmd
		}
		if ol := d.analyzeCommand(cmd, origin); ol.known() {
			d.addf("%s %q: %s", origin, cmd, describeListen(ol))
			l = ol
		}
	}
	if !l.known() {
		l = best.own
	}
	return l
}

// dockerfilePort is how the app listens in the image its Dockerfile builds:
// the runner sets no PORT there, so the Dockerfile and the app decide.
func (d *detection) dockerfilePort(df *dockerfileInfo, best *candidate) listen {
	var l listen
	if df.cmd != "" {
		l = d.analyzeCommand(df.cmd, "Dockerfile "+df.cmdKind)
		if l.known() {
			d.addf("Dockerfile %s %q: %s", df.cmdKind, df.cmd, describeListen(l))
		}
	}
	if !l.known() && best != nil && best.tier > tierStatic {
		l = best.own
	}
	switch {
	case l.explicit:
		return l
	case l.readsPORT && df.envPORT > 0:
		return l
	case df.expose > 0:
		return fixed(df.expose, "Dockerfile EXPOSE")
	case df.envPORT > 0:
		// The app's code was not found; a Dockerfile that sets PORT means it.
		return fixed(df.envPORT, "Dockerfile ENV PORT")
	}
	return l
}

// startOverride is the start command Nixpacks will use instead of its
// provider's: nixpacks.toml's [start] cmd, else the Procfile's web process.
func (d *detection) startOverride() (cmd, origin string) {
	for _, name := range []string{"nixpacks.toml", "nixpacks.json"} {
		data, ok := d.t.manifest(name)
		if !ok {
			continue
		}
		cfg, err := parseNixpacksConfig(name, data)
		if err != nil {
			d.addf("%s: %v, ignored", name, err)
			continue
		}
		if cfg.startCmd != "" {
			return cfg.startCmd, name + " start.cmd"
		}
	}
	if data, ok := d.t.manifest("Procfile"); ok {
		if web := parseProcfile(data)["web"]; web != "" {
			return web, "Procfile web"
		}
	}
	return "", ""
}

// hasAny reports whether deps has one of names, returning the first found.
func hasAny(deps map[string]string, names ...string) (string, bool) {
	for _, n := range names {
		if _, ok := deps[n]; ok {
			return n, true
		}
	}
	return "", false
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
