package detect

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// want is the part of a Result a corpus app is checked against; zero fields
// are not checked, except Port (0 means "no port") and the flags.
type want struct {
	framework, language string
	port                int
	portSource          string // substring
	pm, lockfile        string
	versions            map[string]string
	dockerfile          bool
	monorepo            string   // Monorepo.Tool
	packages            []string // Monorepo.Packages
	reason              string   // substring of one reason
}

var corpus = map[string]want{
	// Node: the label is the most specific dependency; apps that read PORT get the runner's.
	"next":             {framework: "next", language: "node", port: 8080, portSource: "next start reads PORT", pm: "npm", lockfile: "package-lock.json", versions: map[string]string{"node": "20"}},
	"next-custom-port": {framework: "next", language: "node", port: 4000, portSource: "scripts.start (-p 4000)", pm: "pnpm", lockfile: "pnpm-lock.yaml", versions: map[string]string{"pnpm": "9.1.0"}},
	"nuxt":             {framework: "nuxt", language: "node", port: 8080, pm: "yarn", lockfile: "yarn.lock", versions: map[string]string{"node": ">=18"}},
	"remix":            {framework: "remix", language: "node", port: 8080, portSource: "remix-serve", pm: "npm"},
	"react-router": {framework: "react-router", language: "node", port: 8080, portSource: "react-router-serve",
		reason: "NIXPACKS_SPA_CADDY=false"},
	"astro":            {framework: "astro", language: "node", port: 4321, portSource: "astro preview"},
	"astro-node":       {framework: "astro", language: "node", port: 8080, portSource: "@astrojs/node", pm: "pnpm"},
	"sveltekit":        {framework: "sveltekit", language: "node", port: 8080, portSource: "adapter-node"},
	"svelte":           {framework: "svelte", language: "node", port: 8080, portSource: "Caddy"},
	"vite-react":       {framework: "vite", language: "node", port: 8080, portSource: "Caddy", pm: "yarn-berry", lockfile: "yarn.lock"},
	"vite-vanilla":     {framework: "vite", language: "node", port: 5000, portSource: "--port 5000"},
	"create-react-app": {framework: "create-react-app", language: "node", port: 8080, portSource: "react-scripts start reads PORT"},
	"nestjs":           {framework: "nestjs", language: "node", port: 8080, portSource: "src/main.ts reads PORT"},
	"express":          {framework: "express", language: "node", port: 8080, portSource: "server.js reads PORT", versions: map[string]string{"node": "20.x"}},
	"express-hardcoded": {framework: "express", language: "node", port: 5050, portSource: "index.js: app.listen(5050)",
		reason: "port 5050 from index.js"},
	"fastify":     {framework: "fastify", language: "node", port: 3001, portSource: "src/index.ts", pm: "pnpm"},
	"koa":         {framework: "koa", language: "node", port: 8080, portSource: "app.js reads PORT"},
	"hono-bun":    {framework: "hono", language: "bun", port: 8080, portSource: "Bun.serve", pm: "bun", lockfile: "bun.lockb"},
	"bun":         {framework: "bun", language: "bun", port: 8080, portSource: "Bun.serve", pm: "bun", lockfile: "bun.lock"},
	"deno":        {framework: "deno", language: "deno", port: 8000, portSource: "main.ts", pm: "deno", lockfile: "deno.lock"},
	"node-worker": {framework: "node", language: "node", port: 0, reason: "no port found"},

	// Python: the package manager is the one Nixpacks installs with.
	"django":        {framework: "django", language: "python", port: 8080, portSource: "gunicorn", pm: "pip", lockfile: "requirements.txt", versions: map[string]string{"python": "3.12.3"}},
	"fastapi":       {framework: "fastapi", language: "python", port: 8000, portSource: "main.py: uvicorn.run", pm: "poetry", lockfile: "poetry.lock", versions: map[string]string{"python": "3.11"}},
	"flask":         {framework: "flask", language: "python", port: 8080, portSource: "gunicorn reads PORT", pm: "pip", reason: `Procfile web "gunicorn app:app"`},
	"python-uv":     {framework: "python", language: "python", port: 0, pm: "uv", lockfile: "uv.lock", versions: map[string]string{"python": ">=3.12"}},
	"python-pipenv": {framework: "flask", language: "python", port: 5000, portSource: "framework default", pm: "pipenv", lockfile: "Pipfile.lock", versions: map[string]string{"python": "3.12"}},
	"python-pdm":    {framework: "fastapi", language: "python", port: 8000, portSource: "uvicorn", pm: "pdm", lockfile: "pdm.lock"},

	// Ruby, PHP.
	"rails":       {framework: "rails", language: "ruby", port: 8080, portSource: "rails server reads PORT", pm: "bundler", lockfile: "Gemfile.lock", versions: map[string]string{"ruby": "3.3.0"}},
	"sinatra":     {framework: "sinatra", language: "ruby", port: 8080, portSource: "rackup"},
	"ruby-script": {framework: "ruby", language: "ruby", port: 0, pm: "bundler"},
	"laravel":     {framework: "laravel", language: "php", port: 8080, portSource: "nginx", pm: "composer", lockfile: "composer.lock", versions: map[string]string{"php": "^8.2"}, reason: "also found node (vite)"},
	"php":         {framework: "php", language: "php", port: 8080, portSource: "nginx"},

	// JVM.
	"spring-maven": {framework: "spring", language: "java", port: 8080, portSource: "-Dserver.port=$PORT", pm: "maven", versions: map[string]string{"java": "17"},
		reason: "server.port = 8081 (for Dockerfile builds"},
	"spring-gradle-dockerfile": {framework: "spring", language: "java", port: 9090, portSource: "application.yml server.port", pm: "gradle", dockerfile: true,
		versions: map[string]string{"java": "21", "gradle": "8.7"}},
	"java-gradle": {framework: "java", language: "java", port: 0, pm: "gradle", versions: map[string]string{"java": "11"}},
	"scala":       {framework: "scala", language: "scala", port: 0, pm: "sbt"},
	"clojure":     {framework: "clojure", language: "clojure", port: 0, pm: "leiningen"},

	// Go: the framework comes from go.mod, the port from the code.
	"go-gin":    {framework: "gin", language: "go", port: 8080, portSource: "gin's Run()", pm: "go", lockfile: "go.sum", versions: map[string]string{"go": "1.22"}},
	"go-echo":   {framework: "echo", language: "go", port: 1323, portSource: `main.go: e.Logger.Fatal(e.Start(":1323"))`},
	"go-fiber":  {framework: "fiber", language: "go", port: 3000, versions: map[string]string{"go": "1.22.3"}, reason: "toolchain 1.22.4"},
	"go-chi":    {framework: "chi", language: "go", port: 8080, portSource: "cmd/server/main.go reads PORT"},
	"go-stdlib": {framework: "go", language: "go", port: 8090, lockfile: ""},

	// Rust, Elixir, .NET.
	"rust-actix":  {framework: "actix", language: "rust", port: 8080, portSource: "src/main.rs", pm: "cargo", lockfile: "Cargo.lock", versions: map[string]string{"rust": "1.78"}},
	"rust-axum":   {framework: "axum", language: "rust", port: 3000, versions: map[string]string{"rust": "1.75"}},
	"rust-rocket": {framework: "rocket", language: "rust", port: 8000, portSource: "Rocket"},
	"phoenix":     {framework: "phoenix", language: "elixir", port: 8080, portSource: "config/runtime.exs reads PORT", pm: "mix", versions: map[string]string{"elixir": "~> 1.14", "erlang": "26.2.5"}},
	"elixir":      {framework: "elixir", language: "elixir", port: 0, pm: "mix"},
	"dotnet":      {framework: "dotnet", language: "dotnet", port: 3000, portSource: "ASPNETCORE_URLS", versions: map[string]string{"dotnet": "8.0"}},

	// Static sites and bare Dockerfiles.
	"static":     {framework: "static", language: "html", port: 8080, portSource: "nginx"},
	"dockerfile": {framework: "dockerfile", language: "", port: 9000, dockerfile: true},

	// Every other language Nixpacks builds, by its manifest.
	"crystal":     {framework: "crystal", language: "crystal", port: 0, pm: "shards", lockfile: "shard.lock"},
	"dart":        {framework: "dart", language: "dart", port: 8080, portSource: "bin/server.dart reads PORT", pm: "pub"},
	"gleam":       {framework: "gleam", language: "gleam", port: 0, pm: "gleam", lockfile: "manifest.toml"},
	"haskell":     {framework: "haskell", language: "haskell", port: 0, pm: "stack"},
	"swift-vapor": {framework: "vapor", language: "swift", port: 8080, portSource: "Vapor", pm: "swiftpm"},
	"zig":         {framework: "zig", language: "zig", port: 0},
	"cobol":       {framework: "cobol", language: "cobol", port: 0},
	"shell":       {framework: "shell", language: "shell", port: 8080, portSource: "start.sh reads PORT"},
	"nim":         {framework: "nim", language: "nim", port: 0, pm: "nimble"},

	// Tricky cases.
	"two-lockfiles": {framework: "express", port: 8080, pm: "yarn", lockfile: "yarn.lock",
		reason: "several lockfiles (yarn.lock, package-lock.json): yarn is used"},
	"monorepo-pnpm-next": {framework: "node", language: "node", port: 0, pm: "pnpm", lockfile: "pnpm-lock.yaml",
		monorepo: "pnpm-workspaces", packages: []string{"apps/api", "apps/web", "packages/ui"}},
	"monorepo-turborepo": {framework: "node", pm: "yarn", monorepo: "turborepo", packages: []string{"apps/docs", "apps/site", "packages/config"}},
	"monorepo-nx":        {framework: "node", monorepo: "nx", packages: []string{"apps/shop", "libs/ui"}},
	"python-requirements-and-pyproject": {framework: "fastapi", language: "python", port: 8080, portSource: "Procfile web reads PORT", pm: "pip", lockfile: "requirements.txt",
		reason: "requirements.txt and pyproject.toml both present: pip installs requirements.txt only"},
	"dockerfile-and-package-json": {framework: "express", language: "node", port: 3000, portSource: "Dockerfile EXPOSE", pm: "npm", dockerfile: true},
	"django-dockerfile-cmd":       {framework: "django", port: 8000, portSource: "Dockerfile CMD (--bind 0.0.0.0:8000)", dockerfile: true},
	"next-dockerfile-env-port":    {framework: "next", port: 3001, portSource: "Dockerfile ENV PORT", dockerfile: true},
	"nixpacks-toml":               {framework: "express", port: 4500, portSource: "nixpacks.toml start.cmd (--port 4500)"},
}

func TestCorpus(t *testing.T) {
	entries, err := os.ReadDir("testdata/apps")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := corpus[e.Name()]; !ok {
			t.Errorf("testdata/apps/%s has no expected result in corpus", e.Name())
		}
	}
	for name, w := range corpus {
		t.Run(name, func(t *testing.T) {
			r, err := Detect(context.Background(), filepath.Join("testdata/apps", name))
			if err != nil {
				t.Fatal(err)
			}
			checkResult(t, r, w)
		})
	}
}

func checkResult(t *testing.T, r Result, w want) {
	t.Helper()
	defer func() {
		if t.Failed() {
			t.Logf("result:\n%s", strings.Join(r.LogLines(), "\n"))
		}
	}()
	if r.Framework != w.framework {
		t.Errorf("framework = %q, want %q", r.Framework, w.framework)
	}
	if w.language != "" && r.Language != w.language {
		t.Errorf("language = %q, want %q", r.Language, w.language)
	}
	switch {
	case w.port == 0 && r.Port != nil:
		t.Errorf("port = %d (%s), want none", *r.Port, r.PortSource)
	case w.port != 0 && r.Port == nil:
		t.Errorf("port = none, want %d", w.port)
	case w.port != 0 && *r.Port != w.port:
		t.Errorf("port = %d (%s), want %d", *r.Port, r.PortSource, w.port)
	}
	if !strings.Contains(r.PortSource, w.portSource) {
		t.Errorf("portSource = %q, want it to contain %q", r.PortSource, w.portSource)
	}
	if w.pm != "" && r.PackageManager != w.pm {
		t.Errorf("packageManager = %q, want %q", r.PackageManager, w.pm)
	}
	if w.lockfile != "" && r.Lockfile != w.lockfile {
		t.Errorf("lockfile = %q, want %q", r.Lockfile, w.lockfile)
	}
	for k, v := range w.versions {
		if r.Versions[k] != v {
			t.Errorf("versions[%s] = %q, want %q", k, r.Versions[k], v)
		}
	}
	if r.HasDockerfile != w.dockerfile {
		t.Errorf("hasDockerfile = %v, want %v", r.HasDockerfile, w.dockerfile)
	}
	switch {
	case w.monorepo == "" && r.Monorepo != nil:
		t.Errorf("monorepo = %+v, want none", r.Monorepo)
	case w.monorepo != "" && r.Monorepo == nil:
		t.Errorf("monorepo = none, want %s", w.monorepo)
	case w.monorepo != "":
		if r.Monorepo.Tool != w.monorepo || !slices.Equal(r.Monorepo.Packages, w.packages) {
			t.Errorf("monorepo = %s %v, want %s %v", r.Monorepo.Tool, r.Monorepo.Packages, w.monorepo, w.packages)
		}
	}
	if w.reason != "" && !hasReason(r, w.reason) {
		t.Errorf("no reason contains %q; reasons:\n%s", w.reason, strings.Join(r.Reasons, "\n"))
	}
	if len(r.Reasons) == 0 {
		t.Error("no reasons given")
	}
}

func hasReason(r Result, sub string) bool {
	return slices.ContainsFunc(r.Reasons, func(s string) bool { return strings.Contains(s, sub) })
}

func TestMonorepoHintNamesTheApps(t *testing.T) {
	r, err := Detect(context.Background(), "testdata/apps/monorepo-pnpm-next")
	if err != nil {
		t.Fatal(err)
	}
	wantFw := map[string]string{"apps/web": "next", "apps/api": "express"}
	for dir, fw := range wantFw {
		if r.Monorepo.Frameworks[dir] != fw {
			t.Errorf("Frameworks[%s] = %q, want %q", dir, r.Monorepo.Frameworks[dir], fw)
		}
	}
	hint := "this directory is a monorepo (pnpm workspaces) with packages apps/api (express), apps/web (next), packages/ui: set ROOT_DIRECTORY to the one to deploy"
	if !slices.Contains(r.LogLines(), hint) {
		t.Errorf("log lines lack the hint %q:\n%s", hint, strings.Join(r.LogLines(), "\n"))
	}
}

// A Next app that is a package of a pnpm workspace, built with ROOT_DIRECTORY
// set to it: its lockfile is above the directory and out of reach.
func TestNextAppInsidePnpmWorkspace(t *testing.T) {
	r, err := Detect(context.Background(), "testdata/apps/monorepo-pnpm-next/apps/web")
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, r, want{framework: "next", language: "node", port: 8080, portSource: "next start reads PORT",
		reason: "dependencies use the workspace: protocol but there is no lockfile here"})
	if r.PackageManager != "" {
		t.Errorf("packageManager = %q, want none: npm cannot install workspace: dependencies", r.PackageManager)
	}
}

func TestEmptyRepoIsUnknown(t *testing.T) {
	r, err := Detect(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, r, want{framework: "unknown", port: 0, reason: "no manifest, Dockerfile or index.html"})
	if r.Language != "" {
		t.Errorf("language = %q, want none", r.Language)
	}
}

func TestMissingDirIsAnError(t *testing.T) {
	if _, err := Detect(context.Background(), filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Error("Detect of a missing directory succeeded")
	}
	f := filepath.Join(t.TempDir(), "file")
	writeFile(t, f, "x")
	if _, err := Detect(context.Background(), f); err == nil {
		t.Error("Detect of a regular file succeeded")
	}
}

func TestCanceledContextIsAnError(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Detect(ctx, "testdata/apps/next"); err == nil {
		t.Error("Detect with a canceled context succeeded")
	}
}

func TestDetectIsDeterministic(t *testing.T) {
	for _, name := range []string{"monorepo-pnpm-next", "laravel", "python-requirements-and-pyproject", "two-lockfiles"} {
		first, _ := Detect(context.Background(), filepath.Join("testdata/apps", name))
		for range 5 {
			again, _ := Detect(context.Background(), filepath.Join("testdata/apps", name))
			if !slices.Equal(first.LogLines(), again.LogLines()) {
				t.Fatalf("%s: two runs differ:\n%s\n---\n%s", name, strings.Join(first.LogLines(), "\n"), strings.Join(again.LogLines(), "\n"))
			}
		}
	}
}

// A typical repo is detected well under 100 ms; the best of a few runs keeps
// a busy machine from failing this.
func TestTypicalRepoIsFast(t *testing.T) {
	for _, name := range []string{"next", "monorepo-pnpm-next", "django", "spring-maven"} {
		best := time.Hour
		for range 3 {
			start := time.Now()
			if _, err := Detect(context.Background(), filepath.Join("testdata/apps", name)); err != nil {
				t.Fatal(err)
			}
			best = min(best, time.Since(start))
		}
		if best > 100*time.Millisecond {
			t.Errorf("%s: Detect took %v, want well under 100ms", name, best)
		}
	}
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// An express app whose entry file is only built output: no code to read, so
// the port is the runner's PORT, marked as assumed.
func TestServerWithoutReadableEntryAssumesPORT(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "package.json"), `{"scripts": {"start": "node dist/server.js"}, "dependencies": {"express": "^4"}}`)
	r := detectWithin(t, dir)
	checkResult(t, r, want{framework: "express", port: 8080, portSource: "PORT set by the runner (express app reads PORT), assumed"})
}

func TestDockerfileWithoutPortSaysSo(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM alpine\nCMD [\"./worker\"]\n")
	r := detectWithin(t, dir)
	checkResult(t, r, want{framework: "dockerfile", port: 0, dockerfile: true, reason: "no port found"})

	writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM nginx:alpine\nCOPY . /usr/share/nginx/html\nCMD [\"nginx\", \"-g\", \"daemon off;\"]\n")
	writeFile(t, filepath.Join(dir, "index.html"), "<h1>hi</h1>")
	r = detectWithin(t, dir)
	checkResult(t, r, want{framework: "dockerfile", language: "html", port: 80, portSource: "nginx", dockerfile: true})
}

func TestPythonDepsInPackageJSONRepoGetANixpacksNote(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "package.json"), `{"devDependencies": {"prettier": "3"}}`)
	writeFile(t, filepath.Join(dir, "requirements.txt"), "flask\n")
	writeFile(t, filepath.Join(dir, "app.py"), "app.run(port=5001)\n")
	r := detectWithin(t, dir)
	checkResult(t, r, want{framework: "flask", port: 5001, reason: "note: Nixpacks checks node before python"})
}
