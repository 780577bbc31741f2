package plan

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/alternatefutures/af-builder/runner/detect"
	"github.com/alternatefutures/af-builder/runner/failure"
)

const appsDir = "../detect/testdata/apps"

// templated maps the detection test apps a template builds to the template
// that must build them; every other app must go to Nixpacks (or its own
// Dockerfile). A template that silently stops fitting fails here.
var templated = map[string]string{
	"astro": "static", "astro-node": "node", "bun": "node", "create-react-app": "static",
	"express": "node", "express-hardcoded": "node", "fastify": "node", "hono-bun": "node",
	"koa": "node", "nestjs": "node", "next": "node", "next-custom-port": "node",
	"nuxt": "node", "react-router": "node", "remix": "node", "svelte": "static",
	"sveltekit": "node", "vite-react": "static", "vite-vanilla": "static",
	"node-worker": "node", "two-lockfiles": "node", "python-uv": "python",
	"django": "python", "fastapi": "python", "flask": "python", "python-pipenv": "python",
	"python-requirements-and-pyproject": "python", "go-chi": "go", "go-echo": "go",
	"go-fiber": "go", "go-gin": "go", "go-stdlib": "go",
	"rust-actix": "rust", "rust-axum": "rust", "rust-rocket": "rust",
	"rails": "ruby", "sinatra": "ruby",
}

func detected(t *testing.T, app string) Source {
	t.Helper()
	dir := filepath.Join(appsDir, app)
	d, err := detect.Detect(context.Background(), dir)
	if err != nil {
		t.Fatalf("detect %s: %v", app, err)
	}
	return Source{Dir: dir, Detected: d, CacheKey: "ghcr.io-af-u1--octo-" + app, Platform: "linux/amd64"}
}

// parsed is a rendered Dockerfile as BuildKit's own parser reads it.
type parsed struct {
	stages []instructions.Stage
}

func parse(t *testing.T, dockerfile string) parsed {
	t.Helper()
	res, err := parser.Parse(strings.NewReader(dockerfile))
	if err != nil {
		t.Fatalf("BuildKit cannot parse the Dockerfile: %v\n%s", err, dockerfile)
	}
	if len(res.Warnings) > 0 {
		t.Errorf("parser warnings: %+v\n%s", res.Warnings, dockerfile)
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("BuildKit cannot read the instructions: %v\n%s", err, dockerfile)
	}
	return parsed{stages}
}

func (p parsed) final() instructions.Stage { return p.stages[len(p.stages)-1] }

func (p parsed) stage(name string) (instructions.Stage, bool) {
	for _, s := range p.stages {
		if s.Name == name {
			return s, true
		}
	}
	return instructions.Stage{}, false
}

func runs(s instructions.Stage) []*instructions.RunCommand {
	var out []*instructions.RunCommand
	for _, c := range s.Commands {
		if r, ok := c.(*instructions.RunCommand); ok {
			out = append(out, r)
		}
	}
	return out
}

func envOf(s instructions.Stage, key string) (string, bool) {
	val, ok := "", false
	for _, c := range s.Commands {
		if e, isEnv := c.(*instructions.EnvCommand); isEnv {
			for _, kv := range e.Env {
				if kv.Key == key {
					val, ok = kv.Value, true
				}
			}
		}
	}
	return val, ok
}

func lastUser(s instructions.Stage) string {
	u := ""
	for _, c := range s.Commands {
		if uc, ok := c.(*instructions.UserCommand); ok {
			u = uc.User
		}
	}
	return u
}

func cmdOf(t *testing.T, s instructions.Stage) *instructions.CmdCommand {
	t.Helper()
	var cmd *instructions.CmdCommand
	for _, c := range s.Commands {
		if cc, ok := c.(*instructions.CmdCommand); ok {
			cmd = cc
		}
	}
	if cmd == nil {
		t.Fatalf("the final stage has no CMD")
	}
	return cmd
}

// cacheMounts are r's cache mounts.
func cacheMounts(r *instructions.RunCommand) []*instructions.Mount {
	return mountsOf(r, instructions.MountTypeCache)
}

// mountsOf are r's mounts of type typ, their options evaluated as the
// frontend does (with nothing to substitute).
func mountsOf(r *instructions.RunCommand, typ instructions.MountType) []*instructions.Mount {
	if err := r.Expand(func(word string) (string, error) { return word, nil }); err != nil {
		panic(err)
	}
	var out []*instructions.Mount
	for _, m := range instructions.GetMounts(r) {
		if m.Type == typ {
			out = append(out, m)
		}
	}
	return out
}

func TestEveryTemplateRendersForTheDetectionApps(t *testing.T) {
	entries, err := os.ReadDir(appsDir)
	if err != nil {
		t.Fatal(err)
	}
	ps := Planners{Nixpacks: Nixpacks{Bin: "/nonexistent/nixpacks"}}
	seen := map[string]bool{}
	for _, e := range entries {
		app := e.Name()
		t.Run(app, func(t *testing.T) {
			src := detected(t, app)
			c, err := ps.Choose(src)
			if err != nil {
				t.Fatalf("Choose: %v", err)
			}
			want, ok := templated[app]
			if !ok {
				if c.Planner.Name() == "template" {
					t.Fatalf("a template was chosen (%s) for an app expected to go elsewhere", c.Why)
				}
				return
			}
			if c.Planner.Name() != "template" {
				t.Fatalf("planner %s (%s), want the %s template", c.Planner.Name(), c.Why, want)
			}
			rec, err := ps.Template.Recipe(src)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Template != want {
				t.Errorf("template %s, want %s", rec.Template, want)
			}
			seen[want] = true
			checkTemplate(t, src, rec)
		})
	}
	for _, tpl := range []string{"node", "static", "python", "go", "rust", "ruby"} {
		if !seen[tpl] {
			t.Errorf("no detection app was built with the %s template", tpl)
		}
	}
}

// checkTemplate holds every template to the rules they share.
func checkTemplate(t *testing.T, src Source, rec *Recipe) {
	t.Helper()
	df := parse(t, rec.Dockerfile)
	if len(df.stages) < 2 {
		t.Errorf("%d stage(s), want a build stage and a runtime stage", len(df.stages))
	}
	names := map[string]bool{}
	for _, s := range df.stages {
		switch {
		case names[s.BaseName]:
			// Built on an earlier stage: its platform is that stage's.
		case s.Platform != src.Platform:
			t.Errorf("stage %q FROM %s has platform %q, want %q", s.Name, s.BaseName, s.Platform, src.Platform)
		}
		if s.Name != "" {
			names[s.Name] = true
		}
	}
	final := df.final()
	if names[final.BaseName] {
		t.Errorf("the runtime stage is built on build stage %q, not a runtime image", final.BaseName)
	}
	if u := lastUser(final); u == "" || strings.HasPrefix(u, "0") || strings.HasPrefix(u, "root") {
		t.Errorf("runtime user %q, want a non-root one", u)
	}
	if port, ok := envOf(final, "PORT"); !ok || port != "8080" {
		t.Errorf("runtime ENV PORT = %q (set %v), want 8080", port, ok)
	}
	cmd := cmdOf(t, final)
	if cmd.PrependShell {
		t.Errorf("CMD in shell form %q: want exec form", cmd.CmdLine)
	}
	if len(cmd.CmdLine) == 0 || (cmd.CmdLine[0] == "/bin/sh" && !strings.ContainsAny(cmd.CmdLine[len(cmd.CmdLine)-1], "$&|;<>\"'\n")) {
		t.Errorf("CMD %q goes through a shell it does not need", cmd.CmdLine)
	}

	// Package manager caches: every install runs with a cache mount keyed
	// for this service, and no two mounts share a target in one RUN.
	prefix := "af-" + src.CacheKey + "-"
	installs := 0
	for _, s := range df.stages {
		for _, r := range runs(s) {
			ms := cacheMounts(r)
			if len(ms) > 0 {
				installs++
			}
			targets := map[string]bool{}
			for _, m := range ms {
				if !strings.HasPrefix(m.CacheID, prefix) {
					t.Errorf("cache mount %q at %s is not keyed for the service (%s...)", m.CacheID, m.Target, prefix)
				}
				if targets[m.Target] {
					t.Errorf("two cache mounts at %s", m.Target)
				}
				targets[m.Target] = true
			}
		}
	}
	if installs == 0 {
		t.Errorf("no RUN uses a cache mount")
	}

	// Lockfile first: in the first stage that copies the source, the
	// lockfile arrives by itself earlier and an install runs between.
	if lock := src.Detected.Lockfile; lock != "" {
		checkLockfileFirst(t, df, lock)
	}
	if rec.Dockerignore != "" {
		pats, err := ignorefile.ReadAll(strings.NewReader(rec.Dockerignore))
		if err != nil {
			t.Fatalf("the default .dockerignore does not parse: %v", err)
		}
		if !slices.Contains(pats, ".git") {
			t.Errorf("the default .dockerignore keeps .git: %q", pats)
		}
	}
}

// checkLockfileFirst looks for a stage that copies the lockfile, without
// the source, and installs from it (with a cache mount) before the source
// arrives: a source change then reuses that layer.
func checkLockfileFirst(t *testing.T, df parsed, lock string) {
	t.Helper()
stages:
	for _, s := range df.stages {
		lockAt := -1
		for i, c := range s.Commands {
			switch c := c.(type) {
			case *instructions.CopyCommand:
				if c.From != "" {
					continue
				}
				if slices.Contains(c.SourcePaths, ".") {
					continue stages
				}
				if slices.Contains(c.SourcePaths, lock) && lockAt < 0 {
					lockAt = i
				}
			case *instructions.RunCommand:
				if lockAt >= 0 && len(cacheMounts(c)) > 0 {
					return
				}
			}
		}
	}
	t.Errorf("%s is never copied and installed before the source", lock)
}

func TestTwoServicesNeverShareACacheMount(t *testing.T) {
	ids := func(key string) map[string]bool {
		src := detected(t, "next")
		src.CacheKey = key
		rec, err := Template{}.Recipe(src)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, s := range parse(t, rec.Dockerfile).stages {
			for _, r := range runs(s) {
				for _, m := range cacheMounts(r) {
					out[m.CacheID] = true
				}
			}
		}
		return out
	}
	a, b := ids("ghcr.io-af-u1--octo-web"), ids("ghcr.io-af-u2--octo-web")
	if len(a) < 2 {
		t.Fatalf("expected the npm and Next caches, got %v", a)
	}
	for id := range a {
		if b[id] {
			t.Errorf("cache mount %q is shared by two services", id)
		}
	}
}

func TestImagesAreBuiltForTheTargetPlatform(t *testing.T) {
	for _, app := range []string{"express", "go-gin", "flask", "rust-axum", "rails", "vite-react"} {
		src := detected(t, app)
		src.Platform = "linux/arm64"
		rec, err := Template{}.Recipe(src)
		if err != nil {
			t.Fatalf("%s: %v", app, err)
		}
		checkTemplate(t, src, rec)
	}
}

func TestStartCommandWinsAndUsesAShellOnlyWhenItNeedsOne(t *testing.T) {
	cases := []struct{ start, name string }{
		{"node dist/server.js --trace-warnings", "plain words"},
		{"npm run migrate && node server.js", "an operator"},
		{`node server.js --port "$PORT"`, "a variable"},
		{"NODE_OPTIONS=--max-old-space-size=512 node server.js", "an assignment prefix"},
		{"echo starting\nexec node server.js", "several lines"},
	}
	for _, c := range cases {
		src := detected(t, "express")
		src.StartCommand = c.start
		rec, err := Template{}.Recipe(src)
		if err != nil {
			t.Fatal(err)
		}
		cmd := cmdOf(t, parse(t, rec.Dockerfile).final())
		var want []string
		switch c.name {
		case "plain words":
			want = strings.Fields(c.start)
		case "several lines":
			want = []string{"/bin/sh", "-ec", c.start}
		default:
			want = []string{"/bin/sh", "-c", c.start}
		}
		if !slices.Equal(cmd.CmdLine, want) || cmd.PrependShell {
			t.Errorf("%s: CMD %q (shell form %v), want exec form %q", c.name, cmd.CmdLine, cmd.PrependShell, want)
		}
		if rec.hints.StartOrigin != "START_COMMAND" {
			t.Errorf("%s: start origin %q", c.name, rec.hints.StartOrigin)
		}
	}
}

func TestBuildCommandReplacesTheBuildStepAsOneScript(t *testing.T) {
	// Everything that could break a Dockerfile line: a line ending in a
	// backslash, a leading '[', quotes, a variable, a heredoc.
	script := strings.Join([]string{
		`[ -f .env.example ] && cp .env.example .env`,
		`echo "building $NODE_ENV" \`,
		`  && npx tsc -p . `,
		`cat <<EOF > build-info.txt`,
		`it's "done"`,
		`EOF`,
		`# a comment line`,
	}, "\n")
	src := detected(t, "nestjs")
	src.BuildCommand = script
	rec, err := Template{}.Recipe(src)
	if err != nil {
		t.Fatal(err)
	}
	df := parse(t, rec.Dockerfile)
	build, ok := df.stage("build")
	if !ok {
		t.Fatal("no build stage")
	}
	var found bool
	for _, r := range runs(build) {
		if slices.Equal(r.CmdLine, []string{"npm run build"}) {
			t.Errorf("the template's own build still runs beside BUILD_COMMAND")
		}
		if slices.Equal(r.CmdLine, []string{"/bin/sh", "-ec", script}) && !r.PrependShell {
			found = true
		}
	}
	if !found {
		t.Errorf("BUILD_COMMAND is not one exec-form script in the build stage:\n%s", rec.Dockerfile)
	}
	if rec.Build != script {
		t.Errorf("recipe build = %q", rec.Build)
	}
}

// A Node build whose runtime takes production dependencies from their own
// stage borrows the full install through a bind mount: its layers never
// hold node_modules, so no step has to delete it after the build. A
// standalone Next.js app (no production install) still builds on the deps.
func TestNodeBuildBorrowsTheInstallItDoesNotShip(t *testing.T) {
	for _, app := range []string{"nestjs", "next"} {
		rec, err := Template{}.Recipe(detected(t, app))
		if err != nil {
			t.Fatal(err)
		}
		df := parse(t, rec.Dockerfile)
		build, ok := df.stage("build")
		if !ok {
			t.Fatalf("%s: no build stage", app)
		}
		if build.BaseName == "deps" {
			t.Errorf("%s: the build stage is built on the deps stage, so its layers carry node_modules", app)
		}
		var borrowed bool
		for _, r := range runs(build) {
			if slices.Contains(r.CmdLine, "rm -rf node_modules") {
				t.Errorf("%s: the build stage still deletes node_modules", app)
			}
			for _, m := range mountsOf(r, instructions.MountTypeBind) {
				if m.From == "deps" && m.Source == "/app/node_modules" && m.Target == "/app/node_modules" && !m.ReadOnly {
					borrowed = true
				}
			}
		}
		if !borrowed {
			t.Errorf("%s: no build step binds deps' node_modules read-write:\n%s", app, rec.Dockerfile)
		}
		if _, ok := df.stage("prod-deps"); !ok {
			t.Errorf("%s: no prod-deps stage for the runtime", app)
		}
		// npm makes no node_modules when there is nothing to install, and
		// BuildKit refuses to bind or copy a path that does not exist.
		for _, stage := range []string{"deps", "prod-deps"} {
			s, _ := df.stage(stage)
			var made bool
			for _, r := range runs(s) {
				made = made || strings.HasSuffix(strings.Join(r.CmdLine, " "), "&& mkdir -p node_modules")
			}
			if !made {
				t.Errorf("%s: the %s stage does not make sure node_modules exists", app, stage)
			}
		}
	}
}

// A builder that takes COPY --link gets a runtime stage whose copies from
// the other stages are all linked, and that runs nothing after them: on a
// new builder the image is then put together from the registry cache's
// layers without pulling them. One that does not (Docker 20.10) gets no
// --link, which its frontend would refuse.
func TestRuntimeStageLinksItsCopiesWhenTheBuilderTakesThem(t *testing.T) {
	for app, tpl := range templated {
		for _, link := range []bool{true, false} {
			src := detected(t, app)
			src.CopyLink = link
			rec, err := Template{}.Recipe(src)
			if err != nil {
				t.Fatalf("%s: %v", app, err)
			}
			final := parse(t, rec.Dockerfile).final()
			copied := false
			for _, c := range final.Commands {
				switch c := c.(type) {
				case *instructions.CopyCommand:
					if c.From == "" {
						continue
					}
					copied = true
					if c.Link != link {
						t.Errorf("%s (builder takes --link: %v): COPY --from=%s %q linked: %v", app, link, c.From, c.SourcePaths, c.Link)
					}
				case *instructions.RunCommand:
					// Rails' runtime directories come with the app's source
					// (tmp/.keep and the like): its runtime stage still
					// gives them to the app user with a RUN.
					if copied && link && tpl != "ruby" {
						t.Errorf("%s: RUN %q after the linked copies needs their layers on disk", app, c.CmdLine)
					}
				}
			}
			if !copied {
				t.Errorf("%s: the runtime stage copies nothing from the build", app)
			}
		}
	}
}

// Next writes its image and ISR cache under .next/cache at run time, as the
// app user. A linked build copies that directory, made by a stage of its
// own, into a runtime stage that runs nothing; an unlinked one makes it
// with a RUN. Either way the app user owns that directory alone.
func TestNextRuntimeCacheBelongsToTheAppUser(t *testing.T) {
	chowns := func(s instructions.Stage) []string {
		var out []string
		for _, r := range runs(s) {
			if line := strings.Join(r.CmdLine, " "); strings.Contains(line, "chown") {
				out = append(out, line)
			}
		}
		return out
	}
	for _, link := range []bool{true, false} {
		src := detected(t, "next")
		src.CopyLink = link
		rec, err := Template{}.Recipe(src)
		if err != nil {
			t.Fatal(err)
		}
		df := parse(t, rec.Dockerfile)
		final := df.final()
		dirs, made := df.stage("next-cache")
		if !link {
			want := []string{fmt.Sprintf("mkdir -p .next/cache && chown -R %s .next/cache", appUser)}
			if got := chowns(final); !slices.Equal(got, want) || made {
				t.Errorf("unlinked: the runtime stage chowns %q (a next-cache stage: %v), want %q", got, made, want)
			}
			continue
		}
		if got := chowns(final); len(got) > 0 {
			t.Errorf("linked: the runtime stage runs %q", got)
		}
		want := []string{fmt.Sprintf("mkdir -p /app/.next/cache && chown %s /app/.next/cache", appUser)}
		if got := chowns(dirs); !made || !slices.Equal(got, want) {
			t.Errorf("linked: the next-cache stage (made: %v) runs %q, want %q", made, got, want)
		}
		copied := false
		for _, c := range final.Commands {
			if c, ok := c.(*instructions.CopyCommand); ok && c.From == "next-cache" {
				copied = c.Link && slices.Equal(c.SourcePaths, []string{"/app/.next/"}) && c.DestPath == "./.next/" && c.Chown == ""
			}
		}
		if !copied {
			t.Errorf("linked: the runtime stage does not copy /app/.next/ (the directory, owner and all) from next-cache, linked:\n%s", rec.Dockerfile)
		}
	}
}

func TestSelection(t *testing.T) {
	ps := Planners{Nixpacks: Nixpacks{Bin: "/nonexistent/nixpacks"}}
	cases := []struct {
		app, builder string
		want         string // planner, or "error"
	}{
		{"dockerfile-and-package-json", "auto", "dockerfile"},
		{"dockerfile-and-package-json", "", "dockerfile"},
		{"dockerfile-and-package-json", "template", "template"},
		{"dockerfile-and-package-json", "nixpacks", "nixpacks"},
		{"express", "auto", "template"},
		{"express", "nixpacks", "nixpacks"},
		{"express", "dockerfile", "error"},
		{"php", "auto", "nixpacks"},
		{"php", "template", "error"},
		{"monorepo-turborepo", "auto", "nixpacks"},
		{"node-worker", "auto", "template"},
		{"nixpacks-toml", "auto", "nixpacks"},
		{"express", "buildpacks", "error"},
	}
	for _, c := range cases {
		src := detected(t, c.app)
		src.Builder = c.builder
		got, err := ps.Choose(src)
		if c.want == "error" {
			var fe *failure.Error
			if !errors.As(err, &fe) || fe.Class != failure.User {
				t.Errorf("%s with BUILDER=%s: err %v, want a user error", c.app, c.builder, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s with BUILDER=%s: %v", c.app, c.builder, err)
			continue
		}
		if got.Planner.Name() != c.want || got.Why == "" {
			t.Errorf("%s with BUILDER=%s: %s (%q), want %s", c.app, c.builder, got.Planner.Name(), got.Why, c.want)
		}
	}
}

func TestTemplateWithoutAStackSaysWhich(t *testing.T) {
	src := detected(t, "php")
	src.Builder = "template"
	_, err := Planners{}.Choose(src)
	if err == nil || !strings.Contains(err.Error(), "no template for php") {
		t.Errorf("err = %v, want it to name the stack", err)
	}
}

func TestBaseImagesFromTheTablePinnedOrMirrored(t *testing.T) {
	src := detected(t, "express") // engines.node 20.x
	froms := func(b BaseImages) []string {
		rec, err := Template{Bases: b}.Recipe(src)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range parse(t, rec.Dockerfile).stages {
			if s.BaseName != "deps" && s.BaseName != "build" && s.BaseName != "prod-deps" {
				out = append(out, s.BaseName)
			}
		}
		return out
	}
	pinned := "node:20-bookworm-slim@" + pinnedDigests["docker.io/library/node:20-bookworm-slim"]
	for _, f := range froms(BaseImages{}) {
		if f != pinned {
			t.Errorf("FROM %s, want the pinned %s", f, pinned)
		}
	}
	for _, mirror := range []string{"127.0.0.1:5000/standin", "af-standin"} {
		for _, f := range froms(BaseImages{Mirror: mirror}) {
			if f != mirror+"/library/node:20-bookworm-slim" {
				t.Errorf("mirror %s: FROM %s, want the tag under the mirror without the upstream digest", mirror, f)
			}
		}
	}
	override := "af-standin/node:18-bookworm"
	for _, f := range froms(BaseImages{Mirror: "127.0.0.1:5000/standin", Override: map[string]string{"node": override}}) {
		if f != override {
			t.Errorf("with BASE_IMAGE_NODE: FROM %s, want %s", f, override)
		}
	}
}

func TestDeclaredVersionsPickTheTag(t *testing.T) {
	cases := []struct {
		declared, def string
		parts         int
		want          string
	}{
		{"20.x", "22", 1, "20"},
		{"v18.19.0", "22", 1, "18"},
		{">=18", "22", 1, "22"},
		{">=24", "22", 1, "24"},
		{"^20.11", "22", 1, "20"},
		{"", "22", 1, "22"},
		{"3.12.3", "3.12", 2, "3.12"},
		{"^3.11", "3.12", 2, "3.12"},
		{"~=3.10", "3.12", 2, "3.12"},
		{"1.22.3", "1.24", 2, "1.22"},
		{"lts/*", "22", 1, "22"},
	}
	for _, c := range cases {
		if got, _ := pickVersion(c.declared, c.def, c.parts); got != c.want {
			t.Errorf("pickVersion(%q, %q) = %q, want %q", c.declared, c.def, got, c.want)
		}
	}
}

func TestPlanWritesTheDockerfileOutsideTheContextAndShowsIt(t *testing.T) {
	ctx := t.TempDir()
	for name, content := range map[string]string{
		"package.json":      `{"name":"web","scripts":{"start":"node server.js"},"dependencies":{"express":"^4.19.2"}}`,
		"package-lock.json": `{"name":"web","lockfileVersion":3,"packages":{}}`,
		"server.js":         `require("express")().listen(process.env.PORT)`,
	} {
		write(t, filepath.Join(ctx, name), content)
	}
	d, err := detect.Detect(context.Background(), ctx)
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	var log bytes.Buffer
	p, err := Planners{}.Plan(context.Background(), Source{Dir: ctx, Detected: d, WorkDir: work, CacheKey: "svc"}, &log)
	if err != nil {
		t.Fatalf("Plan: %v\n%s", err, log.String())
	}
	if p.Planner != "template" || p.ContextDir != ctx || !strings.HasPrefix(p.DockerfileDir, work) {
		t.Errorf("plan = %+v, want the template's Dockerfile under the work directory and the source as context", p)
	}
	written, err := os.ReadFile(filepath.Join(p.DockerfileDir, p.DockerfileName))
	if err != nil {
		t.Fatal(err)
	}
	parse(t, string(written))
	for _, l := range strings.Split(strings.TrimSpace(string(written)), "\n") {
		if !strings.Contains(log.String(), "  "+l+"\n") {
			t.Errorf("the build log does not show Dockerfile line %q", l)
			break
		}
	}
	ignore, err := os.ReadFile(filepath.Join(ctx, ".dockerignore"))
	if err != nil {
		t.Fatalf("no default .dockerignore written: %v", err)
	}
	pats, _ := ignorefile.ReadAll(bytes.NewReader(ignore))
	if !slices.Contains(pats, "node_modules") {
		t.Errorf("default .dockerignore %q keeps node_modules", pats)
	}
	refined := detect.Refine(d, p.Hints)
	if refined.StartCommand != "node server.js" || refined.Port == nil || *refined.Port != 8080 {
		t.Errorf("refined start %q port %v, want node server.js on 8080", refined.StartCommand, refined.Port)
	}
}

func TestARepositorysDockerignoreIsKept(t *testing.T) {
	ctx := t.TempDir()
	write(t, filepath.Join(ctx, "go.mod"), "module example.com/svc\n\ngo 1.22\n")
	write(t, filepath.Join(ctx, "main.go"), "package main\nfunc main() {}\n")
	write(t, filepath.Join(ctx, ".dockerignore"), "secrets/\n")
	d, err := detect.Detect(context.Background(), ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (Template{}).Plan(context.Background(), Source{Dir: ctx, Detected: d, WorkDir: t.TempDir()}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(ctx, ".dockerignore")); string(b) != "secrets/\n" {
		t.Errorf("the repository's .dockerignore was replaced: %q", b)
	}
}

func TestTheTableIsPinnedByDigest(t *testing.T) {
	digest := regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	produced := map[string]bool{}
	for key, img := range baseImages {
		for _, v := range []string{img.def, "18", "20", "22", "24", "3.11", "3.12", "3.13", "1.23", "1.24", "1.25"} {
			tag := img.fixed
			if tag == "" {
				tag = v + img.suffix
			}
			produced[img.repo+":"+tag] = true
		}
		ref, note := BaseImages{}.image(key, img.def)
		if key == "ruby-build" || key == "debian" {
			continue // not yet recorded: pulled by tag, with a note
		}
		if !strings.Contains(ref, "@sha256:") || note != "" {
			t.Errorf("%s at its default version is %s (%s), want it pinned", key, ref, note)
		}
	}
	for name, d := range pinnedDigests {
		if !digest.MatchString(d) {
			t.Errorf("%s: %q is not a sha256 digest", name, d)
		}
		if !produced[name] {
			t.Errorf("%s is pinned but no table entry asks for it", name)
		}
	}
}

func TestRequirementsNamingTheRepositoryInstallAfterTheSource(t *testing.T) {
	ctx := t.TempDir()
	write(t, filepath.Join(ctx, "requirements.txt"), "flask==3.0.3\n-e .\n")
	write(t, filepath.Join(ctx, "pyproject.toml"), "[project]\nname = \"svc\"\nversion = \"1\"\n")
	write(t, filepath.Join(ctx, "app.py"), "from flask import Flask\napp = Flask(__name__)\n")
	d, err := detect.Detect(context.Background(), ctx)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := Template{}.Recipe(Source{Dir: ctx, Detected: d})
	if err != nil {
		t.Fatal(err)
	}
	build, _ := parse(t, rec.Dockerfile).stage("build")
	sourceAt, installAt := -1, -1
	for i, c := range build.Commands {
		if cp, ok := c.(*instructions.CopyCommand); ok && slices.Contains(cp.SourcePaths, ".") {
			sourceAt = i
		}
		if r, ok := c.(*instructions.RunCommand); ok && slices.Equal(r.CmdLine, []string{"pip install -r requirements.txt"}) {
			installAt = i
		}
	}
	if sourceAt < 0 || installAt < sourceAt {
		t.Errorf("pip install at %d, source copied at %d: want the install after the source\n%s", installAt, sourceAt, rec.Dockerfile)
	}
}

// Next.js salts its webpack cache with its Server Actions key and, in a
// container, makes a new key every build: the Next build step must keep one
// key per cache mount, or the restored cache is thrown away. The step is
// run here by a real shell, with an npm on PATH that reports the key next
// build would see.
func TestNextBuildKeepsOneServerActionsKeyPerCacheMount(t *testing.T) {
	for _, userBuild := range []string{"", "npm run build -- --no-lint"} {
		src := detected(t, "next")
		src.BuildCommand = userBuild
		rec, err := Template{}.Recipe(src)
		if err != nil {
			t.Fatal(err)
		}
		build, ok := parse(t, rec.Dockerfile).stage("build")
		if !ok {
			t.Fatal("no build stage")
		}
		var step *instructions.RunCommand
		for _, r := range runs(build) {
			for _, m := range cacheMounts(r) {
				if m.Target == "/app/.next/cache" {
					step = r
				}
			}
		}
		if step == nil {
			t.Fatalf("no build step with the .next/cache mount:\n%s", rec.Dockerfile)
		}
		argv := step.CmdLine
		if step.PrependShell {
			argv = append([]string{"/bin/sh", "-c"}, strings.Join(argv, " "))
		}

		bin := t.TempDir()
		npm := "#!/bin/sh\necho \"$NEXT_SERVER_ACTIONS_ENCRYPTION_KEY\" >> keys\n"
		if err := os.WriteFile(filepath.Join(bin, "npm"), []byte(npm), 0o755); err != nil {
			t.Fatal(err)
		}
		keysAfter := func(app string, builds int, env ...string) []string {
			if err := os.MkdirAll(filepath.Join(app, ".next", "cache"), 0o755); err != nil {
				t.Fatal(err)
			}
			for range builds {
				cmd := exec.Command(argv[0], argv[1:]...)
				cmd.Dir = app
				cmd.Env = append([]string{"PATH=" + bin + ":/usr/bin:/bin"}, env...)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("build step failed: %v\n%s", err, out)
				}
			}
			raw, err := os.ReadFile(filepath.Join(app, "keys"))
			if err != nil {
				t.Fatal(err)
			}
			return strings.Fields(string(raw))
		}

		one := keysAfter(t.TempDir(), 2)
		if len(one) != 2 || one[0] != one[1] {
			t.Fatalf("BUILD_COMMAND %q: two builds on one cache mount saw keys %q, want one key twice", userBuild, one)
		}
		if k, err := base64.StdEncoding.DecodeString(one[0]); err != nil || len(k) != 32 {
			t.Errorf("key %q is not a base64 AES-256 key (%v)", one[0], err)
		}
		if other := keysAfter(t.TempDir(), 1); other[0] == one[0] {
			t.Errorf("a new cache mount reused key %q", other[0])
		}
		if own := keysAfter(t.TempDir(), 1, "NEXT_SERVER_ACTIONS_ENCRYPTION_KEY=set-by-the-build"); own[0] != "set-by-the-build" {
			t.Errorf("a key set for the build was replaced by %q", own[0])
		}
	}
}

// Carried mounts are the ones whose step runs cold on a new builder
// without them; each is a cache mount the Dockerfile really has, used on
// the recipe's base image (which the runner's helper runs them through).
func TestRecipeCarriesTheMountsABuildStepLivesOn(t *testing.T) {
	for app, want := range map[string][]string{
		"next":    {"/app/.next/cache"},
		"go-chi":  {"/go/pkg/mod", "/root/.cache/go-build"},
		"express": nil,
		"flask":   nil,
	} {
		t.Run(app, func(t *testing.T) {
			rec, err := Template{}.Recipe(detected(t, app))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range rec.Carried {
				got = append(got, c.Path)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("carried %v, want %v", got, want)
			}
			df := parse(t, rec.Dockerfile)
			for _, c := range rec.Carried {
				found := false
				for _, s := range df.stages {
					for _, r := range runs(s) {
						for _, m := range cacheMounts(r) {
							found = found || (m.CacheID == c.ID && m.Target == c.Path)
						}
					}
				}
				if !found {
					t.Errorf("carried mount %+v is not a cache mount of the Dockerfile", c)
				}
			}
		})
	}
}
