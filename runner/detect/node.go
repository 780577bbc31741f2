package detect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// packageJSON holds the fields of package.json that detection uses.
type packageJSON struct {
	Name            string
	Main            string
	PackageManager  string
	Scripts         map[string]string
	Dependencies    map[string]string
	DevDependencies map[string]string
	Engines         map[string]string
	// Workspaces is the npm/yarn/bun workspaces field, either form.
	Workspaces    []string
	HasWorkspaces bool
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// parsePackageJSON is lenient field by field: a package.json whose "scripts"
// is a number still tells its dependencies. Only a file that is not a JSON
// object at all is an error.
func parsePackageJSON(data []byte) (*packageJSON, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(bytes.TrimPrefix(data, utf8BOM), &raw); err != nil {
		return nil, jsonError(err)
	}
	if raw == nil {
		return nil, errors.New("not a JSON object")
	}
	p := &packageJSON{
		Name:            jsonString(raw["name"]),
		Main:            jsonString(raw["main"]),
		PackageManager:  jsonString(raw["packageManager"]),
		Scripts:         jsonStringMap(raw["scripts"]),
		Dependencies:    jsonStringMap(raw["dependencies"]),
		DevDependencies: jsonStringMap(raw["devDependencies"]),
		Engines:         jsonStringMap(raw["engines"]),
	}
	if ws, ok := raw["workspaces"]; ok {
		p.HasWorkspaces = true
		var list []string
		var obj struct {
			Packages []string `json:"packages"`
		}
		if json.Unmarshal(ws, &list) == nil {
			p.Workspaces = list
		} else if json.Unmarshal(ws, &obj) == nil {
			p.Workspaces = obj.Packages
		}
	}
	return p, nil
}

// deps is dependencies and devDependencies together: frameworks are often
// devDependencies (vite, astro) and the build installs both.
func (p *packageJSON) deps() map[string]string {
	all := make(map[string]string, len(p.Dependencies)+len(p.DevDependencies))
	for k, v := range p.DevDependencies {
		all[k] = v
	}
	for k, v := range p.Dependencies {
		all[k] = v
	}
	return all
}

func jsonError(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return errors.New("not a JSON object")
	}
	return errors.New("invalid JSON")
}

func jsonString(raw json.RawMessage) string {
	var s string
	if raw != nil && json.Unmarshal(raw, &s) == nil {
		return s
	}
	return ""
}

func jsonStringMap(raw json.RawMessage) map[string]string {
	var m map[string]any
	if raw == nil || json.Unmarshal(raw, &m) != nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

// loadPackageJSON reads the root package.json once for every detector.
func (d *detection) loadPackageJSON() {
	data, err := d.t.manifestErr("package.json")
	if err != nil {
		if !errors.Is(err, errNotFound) && d.t.ctx.Err() == nil {
			d.pkgErr = err
		}
		return
	}
	p, err := safeParse(func() (*packageJSON, error) { return parsePackageJSON(data) })
	if err != nil {
		d.pkgErr = err
		return
	}
	d.pkg, d.scripts = p, p.Scripts
}

// nodeFramework is the most specific label package.json supports, with the
// dependency that decided it.
func nodeFramework(p *packageJSON, viteConfig bool) (framework, dep string, tier int) {
	deps := p.deps()
	if dep, ok := hasAny(deps, "next"); ok {
		return "next", dep, tierFramework
	}
	if dep, ok := hasAny(deps, "nuxt", "nuxt3", "nuxt-edge"); ok {
		return "nuxt", dep, tierFramework
	}
	for _, k := range sortedKeys(deps) {
		if strings.HasPrefix(k, "@remix-run/") {
			return "remix", k, tierFramework
		}
	}
	if dep, ok := hasAny(deps, "@react-router/dev", "@react-router/serve", "@react-router/node"); ok {
		return "react-router", dep, tierFramework
	}
	if dep, ok := hasAny(deps, "astro"); ok {
		return "astro", dep, tierFramework
	}
	if dep, ok := hasAny(deps, "@sveltejs/kit"); ok {
		return "sveltekit", dep, tierFramework
	}
	if dep, ok := hasAny(deps, "@solidjs/start", "solid-start"); ok {
		return "solid-start", dep, tierFramework
	}
	if dep, ok := hasAny(deps, "@tanstack/react-start", "@tanstack/start"); ok {
		return "tanstack-start", dep, tierFramework
	}
	if dep, ok := hasAny(deps, "@nestjs/core"); ok {
		return "nestjs", dep, tierFramework
	}
	if dep, ok := hasAny(deps, "@angular/ssr", "@nguniversal/express-engine"); ok {
		return "angular", dep, tierFramework
	}
	for _, fw := range []string{"express", "fastify", "koa", "hono"} {
		if _, ok := deps[fw]; ok {
			return fw, fw, tierFramework
		}
	}
	if _, ok := deps["@hapi/hapi"]; ok {
		return "hapi", "@hapi/hapi", tierFramework
	}
	if dep, ok := hasAny(deps, "@angular/core"); ok {
		return "angular", dep, tierSPA
	}
	if dep, ok := hasAny(deps, "gatsby"); ok {
		return "gatsby", dep, tierSPA
	}
	if dep, ok := hasAny(deps, "react-scripts"); ok {
		return "create-react-app", dep, tierSPA
	}
	if dep, ok := hasAny(deps, "svelte"); ok {
		return "svelte", dep, tierSPA
	}
	if dep, ok := hasAny(deps, "vite"); ok {
		return "vite", dep, tierSPA
	}
	if viteConfig {
		return "vite", "vite.config", tierSPA
	}
	if strings.Contains(p.Scripts["build"], "vite build") {
		return "vite", "scripts.build vite build", tierSPA
	}
	return "", "", 0
}

var viteConfigs = []string{"vite.config.js", "vite.config.ts", "vite.config.mjs", "vite.config.mts", "vite.config.cjs"}

func (d *detection) detectNode() *candidate {
	if d.pkg == nil && d.pkgErr == nil {
		return nil
	}
	c := &candidate{language: "node", nixpacks: true}
	d.nodePackageManager(c)
	if c.pm == "bun" {
		c.language = "bun"
	}
	if d.pkg == nil {
		c.tier = tierMalformed
		d.addf("package.json: %v -> cannot tell the framework", d.pkgErr)
		return c
	}
	p := d.pkg
	d.nodeVersions(c, p)

	viteConfig := d.t.firstFile(viteConfigs...) != ""
	fw, dep, tier := nodeFramework(p, viteConfig)
	deps := p.deps()
	if fw != "" {
		if dep == "vite.config" || strings.HasPrefix(dep, "scripts.") {
			d.addf("%s -> %s", dep, fw)
		} else {
			d.addf("package.json depends on %s -> %s", dep, fw)
		}
	}
	if fw == "" {
		_, bunTypes := hasAny(deps, "@types/bun", "bun-types")
		switch {
		case c.pm == "bun" || bunTypes || d.t.isFile("bunfig.toml"):
			fw, tier = "bun", tierLanguage
			d.addf("bun runtime (%s) and no framework dependency -> bun", nonEmpty(c.lockfile, "bun types or bunfig.toml"))
		default:
			fw, tier = "node", tierLanguage
		}
	}
	c.framework, c.tier = fw, tier

	own := d.nodeFrameworkListen(fw, deps, c.pm == "bun")
	start := listen{}
	if s := p.Scripts["start"]; s != "" {
		start = d.analyzeCommand(s, "package.json scripts.start")
		if start.known() {
			d.addf("package.json scripts.start %q: %s", s, describeListen(start))
		}
	} else if entry := d.nodeEntry(p); entry != "" {
		start, _ = d.scanFile(entry)
	}
	if fw == "node" && p.Scripts["start"] == "" && d.nodeEntry(p) == "" {
		c.tier = tierManifestOnly
		d.addf("package.json has no start script, main or index.js: nothing to run")
	}
	if start.known() {
		own = start
	}
	c.own, c.serve = own, own

	if lib, ok := d.nixpacksCaddy(p); ok {
		if c.tier == tierSPA {
			// Nixpacks' Caddyfile listens on {$PORT:3000}, and takes precedence over the start script.
			c.serve = listen{port: 3000, readsPORT: true, reader: "Nixpacks' Caddy for Vite SPAs", source: "framework default (Nixpacks' Caddy for Vite SPAs)"}
			d.addf("Vite app with %s: Nixpacks serves the build with Caddy on $PORT", lib)
		} else {
			d.addf("note: Nixpacks takes this for a Vite SPA (%s) and serves its build with Caddy on $PORT instead of running its server; NIXPACKS_SPA_CADDY=false turns that off", lib)
		}
	}
	return c
}

// nixpacksCaddy mirrors Nixpacks' SPA check, quirks included: its
// has_dependency looks at devDependencies only when there are no dependencies.
func (d *detection) nixpacksCaddy(p *packageJSON) (lib string, ok bool) {
	has := func(name string) bool {
		deps := p.Dependencies
		if deps == nil {
			deps = p.DevDependencies
		}
		_, ok := deps[name]
		return ok
	}
	isVite := has("vite") || d.t.isFile("vite.config.js") || d.t.isFile("vite.config.ts") ||
		strings.Contains(strings.ToLower(p.Scripts["build"]), "vite build")
	if !isVite {
		return "", false
	}
	for _, name := range []string{"react", "vue", "preact", "lit", "solid-js", "@builder.io/qwik"} {
		if has(name) {
			return name, true
		}
	}
	if has("svelte") && !has("@sveltejs/kit") {
		return "svelte", true
	}
	return "", false
}

// nodeEntry is the file Nixpacks runs when package.json has no start script.
func (d *detection) nodeEntry(p *packageJSON) string {
	if p.Main != "" {
		if m := strings.TrimPrefix(p.Main, "./"); d.t.isFile(m) {
			return m
		}
	}
	return d.t.firstFile("index.js", "index.ts")
}

// nodeFrameworkListen is how each framework listens when its start command
// tells us nothing; every default has a one-line why.
func (d *detection) nodeFrameworkListen(fw string, deps map[string]string, bun bool) listen {
	switch fw {
	case "next":
		return frameworkDefault(3000, true, "next start") // next start: $PORT, else 3000
	case "nuxt":
		return frameworkDefault(3000, true, "nuxt's Nitro server") // .output/server/index.mjs: $NITRO_PORT/$PORT, else 3000
	case "remix":
		return frameworkDefault(3000, true, "remix-serve") // $PORT, else 3000
	case "react-router":
		return frameworkDefault(3000, true, "react-router-serve") // $PORT, else 3000
	case "astro":
		if _, ok := deps["@astrojs/node"]; ok {
			return frameworkDefault(4321, true, "@astrojs/node server") // dist/server/entry.mjs: $PORT, else 4321
		}
		return frameworkDefault(4321, false, "astro preview") // static Astro has only astro preview: 4321
	case "sveltekit":
		if _, ok := deps["@sveltejs/adapter-node"]; ok {
			return frameworkDefault(3000, true, "SvelteKit adapter-node server") // node build: $PORT, else 3000
		}
		return frameworkDefault(4173, false, "vite preview") // other adapters only run under vite preview here
	case "angular":
		if _, ok := hasAny(deps, "@angular/ssr", "@nguniversal/express-engine"); ok {
			return frameworkDefault(4000, true, "Angular SSR server") // generated server.ts: $PORT, else 4000
		}
		return frameworkDefault(4200, false, "ng serve") // ng serve ignores $PORT: 4200
	case "vite", "svelte":
		return frameworkDefault(4173, false, "vite preview") // vite preview ignores $PORT: 4173
	case "solid-start", "tanstack-start":
		return frameworkDefault(3000, true, "the Nitro server") // .output/server/index.mjs: $PORT, else 3000
	case "gatsby":
		return frameworkDefault(9000, false, "gatsby serve") // gatsby serve ignores $PORT: 9000
	case "create-react-app":
		return frameworkDefault(3000, true, "react-scripts start") // CRA's server: $PORT, else 3000
	case "nestjs":
		if l, ok := d.scanFirst("src/main.ts", "src/main.js"); ok {
			return l
		}
		return frameworkDefault(3000, true, "Nest's generated main.ts") // app.listen(process.env.PORT ?? 3000)
	}
	if l, ok := d.scanFirst(nodeEntryCandidates...); ok {
		return l
	}
	switch fw {
	case "hono":
		if bun {
			return frameworkDefault(3000, true, "Bun.serve") // export default app under Bun: $PORT, else 3000
		}
		return frameworkDefault(3000, false, "@hono/node-server") // serve() without port: 3000
	case "bun":
		return frameworkDefault(3000, true, "Bun.serve") // Bun.serve: $BUN_PORT/$PORT, else 3000
	case "express", "fastify", "koa", "hapi":
		// No default port of their own and we found no listen call: PaaS-ready
		// servers read PORT, which is the best guess.
		return listen{readsPORT: true, reader: fw + " app", assumed: true}
	}
	return listen{}
}

var nodeEntryCandidates = []string{
	"server.js", "index.js", "app.js", "main.js", "server.ts", "index.ts", "app.ts",
	"src/server.ts", "src/index.ts", "src/main.ts", "src/app.ts",
	"src/server.js", "src/index.js", "src/main.js", "src/app.js",
}

// nodePackageManager decides like Nixpacks: the packageManager field, then
// lockfiles in the order pnpm, yarn, bun, npm.
func (d *detection) nodePackageManager(c *candidate) {
	locks := []struct{ file, pm string }{
		{"pnpm-lock.yaml", "pnpm"},
		{"yarn.lock", "yarn"},
		{"bun.lockb", "bun"},
		{"bun.lock", "bun"},
		{"package-lock.json", "npm"},
		{"npm-shrinkwrap.json", "npm"},
	}
	var found []string
	lockFor := map[string]string{}
	for _, l := range locks {
		if d.t.isFile(l.file) {
			found = append(found, l.file)
			if lockFor[l.pm] == "" {
				lockFor[l.pm] = l.file
			}
		}
	}
	if d.pkg != nil && d.pkg.PackageManager != "" {
		name, version, _ := strings.Cut(d.pkg.PackageManager, "@")
		version, _, _ = strings.Cut(version, "+")
		switch name {
		case "npm", "pnpm", "yarn", "bun":
			c.pm, c.lockfile = name, lockFor[name]
			if name == "yarn" && !strings.HasPrefix(version, "1.") && version != "" {
				c.pm = "yarn-berry"
			}
			d.addf("package.json packageManager %q -> %s", d.pkg.PackageManager, c.pm)
			if version != "" && len(version) <= 64 {
				c.versions = map[string]string{name: version}
			}
		}
	}
	if c.pm == "" && len(found) > 0 {
		c.lockfile = found[0]
		for _, l := range locks {
			if l.file == found[0] {
				c.pm = l.pm
			}
		}
		d.addf("%s -> package manager %s", c.lockfile, c.pm)
	}
	if len(found) > 1 {
		d.addf("several lockfiles (%s): %s is used, as Nixpacks does; delete the others", strings.Join(found, ", "), c.pm)
	}
	if c.pm == "yarn" && (d.t.isFile(".yarnrc.yml") || d.yarnLockIsBerry()) {
		c.pm = "yarn-berry"
		d.addf("yarn.lock in Berry format or .yarnrc.yml -> yarn-berry")
	}
	if c.pm == "" {
		if d.pkg != nil && usesWorkspaceProtocol(d.pkg) {
			d.addf("dependencies use the workspace: protocol but there is no lockfile here: this is a package of a monorepo; its lockfile is at the monorepo root")
			return
		}
		c.pm = "npm"
		d.addf("no lockfile -> npm (installs without a lockfile: builds are not reproducible)")
	}
}

func (d *detection) yarnLockIsBerry() bool {
	data, ok := d.t.source("yarn.lock")
	if !ok {
		return false
	}
	head := data[:min(len(data), 4096)]
	return bytes.Contains(head, []byte("__metadata:"))
}

func usesWorkspaceProtocol(p *packageJSON) bool {
	for _, v := range p.deps() {
		if strings.HasPrefix(v, "workspace:") {
			return true
		}
	}
	return false
}

// nodeVersions reads the Node version where Nixpacks does, in its order.
func (d *detection) nodeVersions(c *candidate, p *packageJSON) {
	c.setVersion("node", p.Engines["node"], "package.json engines.node", d)
	for _, f := range []string{".nvmrc", ".node-version"} {
		if data, ok := d.t.manifest(f); ok {
			c.setVersion("node", strings.TrimPrefix(firstLine(data), "v"), f, d)
		}
	}
	if v := d.toolVersions()["nodejs"]; v != "" {
		c.setVersion("node", v, ".tool-versions", d)
	}
	if v := d.toolVersions()["bun"]; v != "" {
		c.setVersion("bun", v, ".tool-versions", d)
	}
}

func firstLine(data []byte) string {
	s := string(data)
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			if len(line) > 64 {
				return ""
			}
			return line
		}
	}
	return ""
}
