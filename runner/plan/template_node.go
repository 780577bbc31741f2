package plan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// nodePackage is the part of package.json the Node template reads.
type nodePackage struct {
	Main            string            `json:"main"`
	Scripts         map[string]string `json:"scripts"`
	Dependencies    map[string]string `json:"dependencies"`
	DevDependencies map[string]string `json:"devDependencies"`
	Engines         map[string]string `json:"engines"`
}

func (p *nodePackage) has(dep string) bool {
	_, a := p.Dependencies[dep]
	_, b := p.DevDependencies[dep]
	return a || b
}

// nodePM is how one package manager installs and runs scripts.
type nodePM struct {
	// lockfiles are copied (when present) with package.json before the install.
	lockfiles []string
	// extra are config files and directories the install needs, copied when present.
	extra []string
	// setup prepares the package manager (corepack), once per stage.
	setup string
	// install installs every dependency from the lockfile; prod only the
	// production ones ("" when the package manager cannot: the runtime then
	// keeps the build's).
	install, installNoLock, prod, prodNoLock string
	run                                      string
	cache                                    cache
}

var nodePMs = map[string]nodePM{
	"npm": {
		lockfiles: []string{"package-lock.json", "npm-shrinkwrap.json"},
		extra:     []string{".npmrc"},
		install:   "npm ci", installNoLock: "npm install",
		prod: "npm ci --omit=dev", prodNoLock: "npm install --omit=dev",
		run:   "npm run",
		cache: cache{name: "npm", target: "/root/.npm"},
	},
	"pnpm": {
		lockfiles: []string{"pnpm-lock.yaml"},
		extra:     []string{".npmrc", "pnpm-workspace.yaml"},
		setup:     "corepack enable",
		install:   "pnpm install --frozen-lockfile --store-dir /pnpm/store", installNoLock: "pnpm install --store-dir /pnpm/store",
		prod: "pnpm install --frozen-lockfile --prod --store-dir /pnpm/store", prodNoLock: "pnpm install --prod --store-dir /pnpm/store",
		run:   "pnpm run",
		cache: cache{name: "pnpm", target: "/pnpm/store"},
	},
	"yarn": {
		lockfiles: []string{"yarn.lock"},
		extra:     []string{".npmrc", ".yarnrc"},
		install:   "yarn install --frozen-lockfile --cache-folder /yarn-cache", installNoLock: "yarn install --cache-folder /yarn-cache",
		prod: "yarn install --frozen-lockfile --production --cache-folder /yarn-cache", prodNoLock: "yarn install --production --cache-folder /yarn-cache",
		run:   "yarn run",
		cache: cache{name: "yarn", target: "/yarn-cache"},
	},
	"yarn-berry": {
		lockfiles: []string{"yarn.lock"},
		extra:     []string{".yarnrc.yml", ".yarn"},
		setup:     "corepack enable",
		install:   "yarn install --immutable", installNoLock: "yarn install",
		// Berry prunes only with the workspace-tools plugin in older
		// versions: the runtime keeps the build's dependencies.
		run:   "yarn run",
		cache: cache{name: "yarn-berry", target: "/root/.yarn/berry/cache"},
	},
	"bun": {
		lockfiles: []string{"bun.lock", "bun.lockb"},
		extra:     []string{"bunfig.toml", ".npmrc"},
		install:   "bun install --frozen-lockfile", installNoLock: "bun install",
		prod: "bun install --frozen-lockfile --production", prodNoLock: "bun install --production",
		run:   "bun run",
		cache: cache{name: "bun", target: "/root/.bun/install/cache"},
	},
}

// nodeStatic are SPA frameworks whose build is static files, and where the build puts them.
var nodeStatic = map[string]string{
	"vite": "dist", "svelte": "dist", "create-react-app": "build", "astro": "dist", "gatsby": "public",
}

// node: dependencies from the lockfile in their own stage, the build, a
// production-only install, and a runtime with the build and those.
func (b *tbuild) node() error {
	r, d := b.repo, b.src.Detected
	data, ok := r.read("package.json")
	if !ok {
		return noTemplate("package.json is not readable")
	}
	var pkg nodePackage
	if err := json.Unmarshal(bytes.TrimPrefix(data, []byte{0xEF, 0xBB, 0xBF}), &pkg); err != nil {
		return noTemplate("package.json does not parse")
	}
	pm, ok := nodePMs[d.PackageManager]
	if !ok {
		return noTemplate("no template for the %s package manager", nonEmpty(d.PackageManager, "unknown"))
	}
	b.rec.Template = "node"
	if d.PackageManager == "bun" {
		switch d.Framework {
		case "bun", "hono", "express", "fastify", "koa", "node", "elysia":
		default:
			// Their build tools run on Node, which the Bun image lacks.
			return noTemplate("a %s app on Bun: its tools need Node as well", d.Framework)
		}
	}
	imageKey := "node"
	if d.PackageManager == "bun" {
		imageKey = "bun"
	}
	version := d.Versions["node"]
	if imageKey == "bun" {
		version = d.Versions["bun"]
	}
	image := b.image(imageKey, version, map[string]int{"node": 1, "bun": 2}[imageKey])
	b.rec.BaseImage, b.rec.RuntimeImage = image, image

	var lock []string
	for _, l := range pm.lockfiles {
		if r.isFile(l) {
			lock = append(lock, l)
		}
	}
	install, prod := pm.install, pm.prod
	if len(lock) == 0 {
		install, prod = pm.installNoLock, pm.prodNoLock
		b.note("no lockfile: dependencies are resolved afresh on every build; commit %s", pm.lockfiles[0])
	}
	b.rec.Install = install

	static, isStatic := nodeStatic[d.Framework]
	if d.Framework == "astro" && (pkg.has("@astrojs/node")) {
		isStatic = false
	}
	if d.Framework == "sveltekit" && pkg.has("@sveltejs/adapter-static") && !pkg.has("@sveltejs/adapter-node") {
		static, isStatic = "build", true
	}
	buildCmd := ""
	if pkg.Scripts["build"] != "" {
		buildCmd = pm.run + " build"
	}
	if isStatic && b.src.StartCommand == "" && d.StartCommand == "" {
		if buildCmd == "" && b.src.BuildCommand == "" {
			return noTemplate("a %s app without a build script", d.Framework)
		}
		return b.nodeStatic(pm, image, lock, install, buildCmd, static)
	}

	start, standalone, err := b.nodeStart(&pkg, pm)
	if err != nil {
		return err
	}
	start = b.startCommand(start)
	if standalone {
		prod = ""
	}
	mounts := []cache{pm.cache}
	if pm.setup != "" {
		mounts = append(mounts, cache{name: "corepack", target: "/root/.cache/node/corepack"})
	}

	df := b.df
	b.header()
	noBuild := buildCmd == "" && b.src.BuildCommand == "" && prod != ""
	if noBuild {
		// Nothing to build: production dependencies only, installed once;
		// the runtime takes the source from the context.
		b.rec.Install = prod
		b.nodeDeps("prod-deps", image, pm, lock, prod, mounts)
	} else {
		b.nodeDeps("deps", image, pm, lock, install, mounts)
		df.blank()
		buildMounts, prelude := mounts, ""
		if prod != "" {
			// The runtime takes production dependencies from their own
			// stage, so the build borrows the full install instead of
			// building on it: the build's layers never hold node_modules,
			// and no step deletes it after every build (20,000 files for
			// create-next-app: 3 s of unlinks on overlayfs, warm or cold).
			b.nodeStage("build", image, pm)
			buildMounts = append(slices.Clone(mounts), bindFrom("deps", "/app/node_modules"))
		} else {
			df.line("FROM deps AS build")
		}
		df.copy("", []string{"."}, "./")
		df.env("NODE_ENV", "production")
		if d.Framework == "next" {
			buildMounts = append(buildMounts, cache{name: "next", target: "/app/.next/cache", carried: true})
			df.env("NEXT_TELEMETRY_DISABLED", "1")
			prelude = nextServerActionsKey
			df.line("# Next.js makes a new Server Actions key in every container build, which")
			df.line("# voids its webpack cache: keep one key in the cache mount, as it does elsewhere.")
		}
		b.buildStepAfter(prelude, buildCmd, buildMounts...)
		if prod != "" {
			df.blank()
			b.nodeDeps("prod-deps", image, pm, lock, prod, mounts)
		}
	}
	df.blank()
	// Next writes its image and ISR cache under .next/cache at run time, as
	// the app user. Where copies are linked the runtime stage runs nothing
	// (a RUN would need every layer below it on disk), so a stage of its
	// own makes the directory, and the runtime copies it, owner and all.
	nextCache := d.Framework == "next" && df.link
	if nextCache {
		df.from(image, "next-cache")
		df.run(fmt.Sprintf("mkdir -p /app/.next/cache && chown %s /app/.next/cache", appUser))
		df.blank()
	}
	df.from(image, "")
	df.line("WORKDIR /app")
	df.env("NODE_ENV", "production", "HOST", "0.0.0.0", "PATH", "/app/node_modules/.bin:$PATH")
	if standalone {
		// Next's standalone server binds to HOSTNAME.
		df.env("HOSTNAME", "0.0.0.0", "NEXT_TELEMETRY_DISABLED", "1")
		df.copyFrom("build", []string{"/app/.next/standalone"}, "./")
		df.copyFrom("build", []string{"/app/.next/static"}, "./.next/static")
		if r.isDir("public") {
			df.copyFrom("build", []string{"/app/public"}, "./public")
		}
	} else {
		// Dependencies first: a source change leaves their layer, and the
		// registry's copy of it, as they were.
		if prod != "" {
			df.copyFrom("prod-deps", []string{"/app/node_modules"}, "./node_modules")
		}
		if noBuild {
			df.copy("", []string{"."}, "./")
		} else {
			df.copyFrom("build", []string{"/app"}, "./")
		}
	}
	switch {
	case nextCache:
		// /app/.next/'s contents are the cache directory itself, owner
		// included; copying the directory would make its destination
		// root's.
		df.copyFrom("next-cache", []string{"/app/.next/"}, "./.next/")
	case d.Framework == "next":
		df.run(fmt.Sprintf("mkdir -p .next/cache && chown -R %s .next/cache", appUser))
	}
	b.start(start)
	return nil
}

// nextServerActionsKey keeps next build's webpack cache alive between
// container builds. Next.js salts the cache's version with its Server
// Actions encryption key, and in a container (where it assumes nothing
// persists) it makes a new key for every build instead of keeping it in
// .next/cache as it does elsewhere: the cache mount would be restored and
// thrown away every time (measured: a warm compile as slow as a cold one).
// The key is kept in the cache mount, as next build keeps it outside
// containers; one set for the build wins. It is no platform secret: next
// build writes it into its output either way.
const nextServerActionsKey = `k=.next/cache/af-server-actions-key; [ -s "$k" ] || head -c 32 /dev/urandom | base64 > "$k"; ` +
	`export NEXT_SERVER_ACTIONS_ENCRYPTION_KEY="${NEXT_SERVER_ACTIONS_ENCRYPTION_KEY:-$(cat "$k")}"; `

// nodeStage starts a stage in /app with the package manager ready.
func (b *tbuild) nodeStage(stage, image string, pm nodePM) {
	df := b.df
	df.from(image, stage)
	df.line("WORKDIR /app")
	// Package binaries on PATH, as npm run puts them, for BUILD_COMMAND too.
	df.env("PATH", "/app/node_modules/.bin:$PATH")
	if pm.setup != "" {
		df.env("COREPACK_ENABLE_DOWNLOAD_PROMPT", "0")
		df.run(pm.setup)
	}
}

// nodeDeps writes a stage that installs dependencies from the lockfile.
func (b *tbuild) nodeDeps(stage, image string, pm nodePM, lock []string, install string, mounts []cache) {
	df, r := b.df, b.repo
	b.nodeStage(stage, image, pm)
	files := append([]string{"package.json"}, lock...)
	for _, e := range pm.extra {
		if r.isFile(e) {
			files = append(files, e)
		}
	}
	df.copy("", files, "./")
	for _, e := range pm.extra {
		if r.isDir(e) {
			df.copy("", []string{e}, "./"+e)
		}
	}
	// With nothing to install, npm makes no node_modules, and the stages
	// that bind or copy it would fail on a missing path.
	df.run(install+" && mkdir -p node_modules", mounts...)
}

// nodeStatic builds an SPA and serves its files with Caddy, falling back to
// index.html for client-side routes.
func (b *tbuild) nodeStatic(pm nodePM, image string, lock []string, install, buildCmd, outDir string) error {
	df := b.df
	b.rec.Template = "static"
	server := b.image("static", "", 0)
	b.rec.RuntimeImage = server
	mounts := []cache{pm.cache}
	if pm.setup != "" {
		mounts = append(mounts, cache{name: "corepack", target: "/root/.cache/node/corepack"})
	}
	b.header()
	b.nodeDeps("deps", image, pm, lock, install, mounts)
	df.blank()
	df.line("FROM deps AS build")
	df.copy("", []string{"."}, "./")
	df.env("NODE_ENV", "production")
	b.buildStep(buildCmd, mounts...)
	df.blank()
	df.from(server, "")
	df.env("XDG_CONFIG_HOME", "/tmp/caddy", "XDG_DATA_HOME", "/tmp/caddy")
	// The image's caddy carries a file capability (to bind port 80), which a
	// container run with every capability dropped cannot exec; a copy has
	// none, and $PORT needs none.
	df.run("cp /usr/bin/caddy /usr/bin/caddy.plain && mv /usr/bin/caddy.plain /usr/bin/caddy")
	df.run(`printf '%s\n' '{' '  admin off' '  auto_https off' '}' ':{$PORT} {' '  root * /srv' '  encode gzip' '  try_files {path} /index.html' '  file_server' '}' > /etc/caddy/Caddyfile`)
	df.copyFrom("build", []string{"/app/" + outDir + "/"}, "/srv/")
	cmd := "caddy run --config /etc/caddy/Caddyfile --adapter caddyfile"
	b.rec.hints.Port, b.rec.hints.PortSource = portOfRuntime(), "Caddy serving the static build on $PORT"
	b.start(b.startCommand(cmd))
	return nil
}

var nextStandalone = regexp.MustCompile(`output\s*:\s*["'\x60]standalone["'\x60]`)

// nodeStart is the template's start command for the framework, and whether
// the app builds Next's standalone server.
func (b *tbuild) nodeStart(pkg *nodePackage, pm nodePM) (string, bool, error) {
	r, d := b.repo, b.src.Detected
	script := func(name string) string { return strings.TrimSpace(pkg.Scripts[name]) }
	switch d.Framework {
	case "next":
		for _, f := range []string{"next.config.js", "next.config.mjs", "next.config.ts", "next.config.cjs"} {
			if data, ok := r.read(f); ok && nextStandalone.Match(data) {
				return "node server.js", true, nil
			}
		}
		if s := script("start"); s != "" {
			return s, false, nil
		}
		return "next start", false, nil
	case "nuxt", "solid-start", "tanstack-start":
		return "node .output/server/index.mjs", false, nil
	case "sveltekit":
		return "node build", false, nil
	case "astro":
		return "node ./dist/server/entry.mjs", false, nil
	case "nestjs":
		if s := script("start:prod"); s != "" {
			return s, false, nil
		}
		return "node dist/main", false, nil
	}
	if s := script("start"); s != "" {
		return s, false, nil
	}
	runtime := "node"
	if d.PackageManager == "bun" {
		runtime = "bun"
	}
	if pkg.Main != "" && r.isFile(strings.TrimPrefix(pkg.Main, "./")) {
		return runtime + " " + strings.TrimPrefix(pkg.Main, "./"), false, nil
	}
	if f := r.firstFile("server.js", "index.js", "app.js", "main.js"); f != "" {
		return runtime + " " + f, false, nil
	}
	if runtime == "bun" {
		if f := r.firstFile("index.ts", "server.ts", "src/index.ts", "src/server.ts"); f != "" {
			return "bun " + f, false, nil
		}
	}
	return "", false, noTemplate("a %s app with nothing to start: add a start script or set START_COMMAND", d.Framework)
}
