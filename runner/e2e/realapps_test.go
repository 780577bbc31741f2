package e2e

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/alternatefutures/af-builder/internal/testinfra/appcheck"
	"github.com/alternatefutures/af-builder/internal/testinfra/baseimage"
	gs "github.com/alternatefutures/af-builder/internal/testinfra/gitserver"
	"github.com/alternatefutures/af-builder/internal/testinfra/realapps"
)

// Real applications, built by the runner's templates from real dependencies:
// npm packages from the npm registry, Go modules from the module proxy, and
// (PyPI being unreachable here) Flask and gunicorn from Debian, already in the
// Python stand-in's system site-packages. The templates pull their base
// images through BASE_IMAGE_MIRROR=standin, the local stand-ins of the
// official images (internal/testinfra/baseimage), as a cluster would pull
// through its registry mirror.

var standIns struct {
	once sync.Once
	err  error
}

// needStandIns imports the stand-in base images into the test engine,
// building their root filesystems first on a machine that has none cached
// (minutes, once per recipe).
func needStandIns(t *testing.T) {
	t.Helper()
	standIns.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		imgs, err := baseimage.All()
		if err != nil {
			standIns.err = err
			return
		}
		t0 := time.Now()
		standIns.err = baseimage.Import(ctx, env.daemon.Host(), baseimage.Options{Log: os.Stderr}, imgs...)
		t.Logf("stand-in base images ready in %s", time.Since(t0).Round(time.Millisecond))
	})
	if standIns.err != nil {
		t.Fatal(standIns.err)
	}
}

// buildRealApp commits app to a new repository and builds it through the
// runner with the stand-ins as the base image mirror.
func buildRealApp(t *testing.T, app realapps.App, extraEnv map[string]string) (*build, result) {
	t.Helper()
	needStandIns(t)
	files, err := app.Files()
	if err != nil {
		t.Fatal(err)
	}
	repo, shas := newRepo(t, files)
	b := newBuild(t, repo, shas[0])
	// A cold build compiles and installs for real: minutes on an idle
	// 2-core machine, many more when it is shared (a Go build of chi with
	// an empty build cache took 5 minutes at load average 36).
	b.Wait = 30 * time.Minute
	for k, v := range app.BuildEnv(baseimage.DefaultMirror) {
		b.Env[k] = v
	}
	for k, v := range extraEnv {
		b.Env[k] = v
	}
	return b, b.run(t)
}

// expectServedApp checks a SUCCEEDED template build of app: one terminal
// callback naming the template planner, the framework and a port; an amd64
// image in the registry with no secret in its config; and that image, pulled
// back and run with its own command, answering HTTP on the reported port.
func expectServedApp(t *testing.T, app realapps.App, b *build, res result) {
	t.Helper()
	if res.ExitCode != 0 || res.Terminals != 1 || res.Terminal["status"] != "SUCCEEDED" {
		t.Fatalf("exit %d, %d terminal callbacks, terminal %v", res.ExitCode, res.Terminals, res.Terminal)
	}
	p := res.Terminal
	if p["planner"] != "template" {
		t.Errorf("planner = %v, want template (reason %v)", p["planner"], p["plannerReason"])
	}
	if p["detectedFramework"] != app.Framework {
		t.Errorf("detectedFramework = %v, want %s", p["detectedFramework"], app.Framework)
	}
	port, ok := p["detectedPort"].(float64)
	if !ok || port <= 0 {
		t.Fatalf("detectedPort = %v, want a port", p["detectedPort"])
	}
	if logs, _ := p["logs"].(string); !strings.Contains(logs, "FROM --platform=linux/amd64 "+baseimage.DefaultMirror+"/library/") {
		t.Errorf("the build log does not show the template's Dockerfile on the mirror's base images")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	repoName, tag := repoAndTag(b.Tag)
	cfg, err := env.registry.ImageConfig(ctx, repoName, tag)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OS != "linux" || cfg.Architecture != "amd64" {
		t.Errorf("image platform %s/%s, want linux/amd64", cfg.OS, cfg.Architecture)
	}
	if cfg.User == "" || cfg.User == "root" || strings.HasPrefix(cfg.User, "0") {
		t.Errorf("image runs as %q, want a non-root user", cfg.User)
	}
	assertNoSecretsIn(t, "image config", string(cfg.Raw))

	c := dockerClient(t)
	pullFresh(ctx, t, c, b.Tag)
	got, err := appcheck.Get(ctx, c, b.Tag, int(port), "/")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s answered %d after %s: %s", app.Name, got.Status, got.Waited.Round(time.Millisecond), got.Body)
	if got.Status != 200 || !strings.Contains(got.Body, app.Answer) {
		t.Errorf("GET / on port %v = %d %q, want 200 with %q", port, got.Status, got.Body, app.Answer)
	}
}

// pullFresh replaces the engine's copy of ref with the registry's, so what
// runs is what was pushed.
func pullFresh(ctx context.Context, t *testing.T, c *client.Client, ref string) {
	t.Helper()
	if _, err := c.ImageRemove(ctx, ref, client.ImageRemoveOptions{Force: true}); err != nil {
		t.Fatalf("remove local %s: %v", ref, err)
	}
	pull, err := c.ImagePull(ctx, ref, client.ImagePullOptions{RegistryAuth: env.registry.RegistryAuth()})
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	if err := pull.Wait(ctx); err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
}

// An Express app on Node 18 (engines.node picks the node:18 image): npm ci
// installs its 75 locked packages from the npm registry.
func TestExpressAppWithALockfileIsBuiltByTheNodeTemplateAndAnswersHTTP(t *testing.T) {
	b, res := buildRealApp(t, realapps.Express, nil)
	expectServedApp(t, realapps.Express, b, res)
	logs, _ := res.Terminal["logs"].(string)
	if !strings.Contains(logs, "npm ci") {
		t.Errorf("the build log shows no npm ci")
	}
}

// A Go service whose router comes from the Go module proxy, built into a
// static binary on scratch.
func TestGoServiceWithAModuleFromTheProxyIsBuiltByTheGoTemplateAndAnswersHTTP(t *testing.T) {
	b, res := buildRealApp(t, realapps.Go, nil)
	expectServedApp(t, realapps.Go, b, res)
}

// A Flask app served by gunicorn. Its requirements pin exactly Debian's
// Flask and gunicorn, which the python stand-in has in its system
// site-packages: this passes only because the template makes its virtualenv
// with --system-site-packages, so pip finds them installed and never asks
// PyPI (unreachable here).
func TestFlaskAppIsBuiltByThePythonTemplateAndAnswersHTTP(t *testing.T) {
	b, res := buildRealApp(t, realapps.Flask, nil)
	expectServedApp(t, realapps.Flask, b, res)
	logs, _ := res.Terminal["logs"].(string)
	if !strings.Contains(logs, "Requirement already satisfied") {
		t.Errorf("pip did not report the requirements as already satisfied")
	}
}

// A Node build step borrows the full install through a bind mount from the
// deps stage: here BUILD_COMMAND needs Express from it and writes into the
// build's output, and the runtime runs on the production install alone.
func TestNodeBuildStepSeesTheInstallAndTheRuntimeShipsItsOutput(t *testing.T) {
	build := `node -e "require('express'); require('fs').writeFileSync('built.txt', 'ok')"`
	b, res := buildRealApp(t, realapps.Express, map[string]string{"BUILD_COMMAND": build})
	expectServedApp(t, realapps.Express, b, res)
	logs, _ := res.Terminal["logs"].(string)
	if !strings.Contains(logs, "--mount=type=bind,from=deps,source=/app/node_modules,target=/app/node_modules,rw") {
		t.Errorf("the build step does not bind the deps stage's node_modules")
	}
	if strings.Contains(logs, "rm -rf node_modules") {
		t.Errorf("the build still deletes node_modules")
	}
}

// npm makes no node_modules for a package with no dependencies; the build
// step's bind of it and the runtime's copy of it work all the same.
func TestNodeAppWithABuildScriptAndNoDependenciesBuilds(t *testing.T) {
	app := realapps.App{Name: "nodeps", Framework: "node", Answer: "built by the build step"}
	repo, shas := newRepo(t, map[string]gs.File{
		"package.json": gs.Text(`{"name": "nodeps", "version": "1.0.0", "private": true,
  "scripts": {"build": "node build.js", "start": "node server.js"}, "engines": {"node": "18"}}
`),
		"package-lock.json": gs.Text(`{"name": "nodeps", "version": "1.0.0", "lockfileVersion": 3, "requires": true,
  "packages": {"": {"name": "nodeps", "version": "1.0.0", "engines": {"node": "18"}}}}
`),
		"build.js": gs.Text(`require("fs").writeFileSync("greeting.txt", "built by the build step\n");
`),
		"server.js": gs.Text(`const greeting = require("fs").readFileSync(__dirname + "/greeting.txt", "utf8");
require("http").createServer((req, res) => res.end(greeting)).listen(process.env.PORT || 3000);
`),
	})
	needStandIns(t)
	b := newBuild(t, repo, shas[0])
	b.Wait = 10 * time.Minute
	for k, v := range realapps.Express.BuildEnv(baseimage.DefaultMirror) {
		b.Env[k] = v
	}
	expectServedApp(t, app, b, b.run(t))
}

// A repository with its own Dockerfile keeps it, even with a package.json
// a Node template would take.
func TestRepositoryWithADockerfileAndAPackageJSONUsesItsDockerfile(t *testing.T) {
	files, err := realapps.Express.Files()
	if err != nil {
		t.Fatal(err)
	}
	files["Dockerfile"] = gs.Text("FROM " + baseImage + "\nCMD [\"echo\", \"built from the repository's Dockerfile\"]\n")
	repo, shas := newRepo(t, files)
	b := newBuild(t, repo, shas[0])
	b.Env["BASE_IMAGE_MIRROR"] = baseimage.DefaultMirror

	res := b.run(t)

	if res.ExitCode != 0 || res.Terminal["status"] != "SUCCEEDED" {
		t.Fatalf("exit %d, terminal %v", res.ExitCode, res.Terminal)
	}
	if res.Terminal["planner"] != "dockerfile" {
		t.Errorf("planner = %v, want dockerfile (reason %v)", res.Terminal["planner"], res.Terminal["plannerReason"])
	}
	if out := runFromRegistry(t, b.Tag); out != "built from the repository's Dockerfile" {
		t.Errorf("image prints %q", out)
	}
}

// BUILDER=nixpacks takes Nixpacks (here its stand-in) even for an app a
// template fits.
func TestBuilderNixpacksForcesTheNixpacksPlanner(t *testing.T) {
	files, err := realapps.Express.Files()
	if err != nil {
		t.Fatal(err)
	}
	repo, shas := newRepo(t, files)
	b := newBuild(t, repo, shas[0])
	b.Env["BASE_IMAGE_MIRROR"] = baseimage.DefaultMirror
	b.Env["BUILDER"] = "nixpacks"
	calls := t.TempDir() + "/nixpacks.log"
	b.Env["NIXPACKS_STANDIN_LOG"] = calls

	res := b.run(t)

	if res.ExitCode != 0 || res.Terminal["status"] != "SUCCEEDED" {
		t.Fatalf("exit %d, terminal %v", res.ExitCode, res.Terminal)
	}
	if res.Terminal["planner"] != "nixpacks" {
		t.Errorf("planner = %v, want nixpacks (reason %v)", res.Terminal["planner"], res.Terminal["plannerReason"])
	}
	if reason, _ := res.Terminal["plannerReason"].(string); !strings.Contains(reason, "BUILDER=nixpacks") {
		t.Errorf("plannerReason = %q, want it to name BUILDER=nixpacks", reason)
	}
	if log, err := os.ReadFile(calls); err != nil || !strings.Contains(string(log), `"build"`) {
		t.Errorf("nixpacks build was not run (log %q, %v)", log, err)
	}
}

// BUILDER=template on a stack without a template is the user's error, in
// the plan phase, saying so; nothing is built.
func TestBuilderTemplateOnAStackWithoutATemplateFailsInPlan(t *testing.T) {
	repo, shas := newRepo(t, map[string]gs.File{
		"mix.exs":      gs.Text("defmodule Hello.MixProject do\n  use Mix.Project\n  def project, do: [app: :hello, version: \"0.1.0\", deps: []]\nend\n"),
		"lib/hello.ex": gs.Text("defmodule Hello do\n  def hi, do: :ok\nend\n"),
	})
	b := newBuild(t, repo, shas[0])
	b.Env["BUILDER"] = "template"

	res := b.run(t)

	expectFailure(t, res, "plan", "user", "BUILDER=template but there is no template for this app")
	if imageExists(t, b.Tag) {
		t.Errorf("an image was built")
	}
}
