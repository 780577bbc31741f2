package plan

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/alternatefutures/af-builder/runner/detect"
	"github.com/alternatefutures/af-builder/runner/failure"
	"github.com/alternatefutures/af-builder/shared/validate"
)

// Template writes a Dockerfile for a stack the runner knows (Node, Python,
// Go, Rust, Ruby) from the detection result, instead of asking Nixpacks:
// multi-stage, lockfile first, package manager caches in BuildKit cache
// mounts keyed per service, a non-root runtime user, ENV PORT and the start
// command detection chose. The Dockerfile is printed in the build log, so a
// user can commit it and take over.
type Template struct {
	Bases BaseImages
}

// Name is the planner's name.
func (Template) Name() string { return "template" }

// Recipe is what a template build does, in the terms `runner plan --format
// json` shows it.
type Recipe struct {
	// Template is the template used: node, static, python, go, rust, ruby.
	Template       string `json:"template"`
	Language       string `json:"language"`
	Framework      string `json:"framework"`
	PackageManager string `json:"packageManager,omitempty"`
	Install        string `json:"installCommand,omitempty"`
	Build          string `json:"buildCommand,omitempty"`
	Start          string `json:"startCommand"`
	BaseImage      string `json:"baseImage"`
	RuntimeImage   string `json:"runtimeImage"`
	// Dockerfile is the rendered Dockerfile; Dockerignore the default
	// .dockerignore written when the repository has none (nil when it has one).
	Dockerfile   string `json:"-"`
	Dockerignore string `json:"-"`
	// Carried are the cache mounts a new builder should start with, from
	// the last build's: BaseImage has the shell and cp that move them.
	Carried []CarriedMount `json:"carriedCaches,omitempty"`
	// Notes are lines for the build log (a version that did not parse, an
	// image pulled by tag).
	Notes []string `json:"-"`
	hints detect.Hints
}

// CarriedMount is a BuildKit cache mount that the runner carries from one
// builder to the next as an image of its own next to the registry cache:
// cache mounts stay in the daemon that made them, and no registry cache
// exports them.
type CarriedMount struct {
	// ID is the mount's id in the Dockerfile.
	ID string `json:"id"`
	// Path is where the build step sees it, for the log.
	Path string `json:"path"`
}

func (r *Recipe) describe() string {
	s := r.Framework
	if r.Language != r.Framework {
		s += ", " + r.Language
	}
	if r.PackageManager != "" {
		s += ", " + r.PackageManager
	}
	return s
}

// noTemplate says why no template fits (a stack without one, or detection
// that cannot fill one in): the reason goes to the log, Nixpacks takes over.
func noTemplate(format string, args ...any) error {
	return fmt.Errorf(format, args...)
}

// Recipe renders the template for src, or says why none fits.
func (t Template) Recipe(src Source) (*Recipe, error) {
	d := src.Detected
	switch d.Framework {
	case "unknown", "dockerfile", "":
		return nil, fmt.Errorf("detection could not tell what the app is (%s)", nonEmpty(d.Framework, "nothing detected"))
	}
	if d.Monorepo != nil && len(d.Monorepo.Packages) > 0 {
		switch d.Framework {
		case "node", "bun":
			return nil, fmt.Errorf("this is a monorepo root (%s): set ROOT_DIRECTORY to the package to deploy", d.Monorepo.Tool)
		}
	}
	r, err := openRepo(src.Dir)
	if err != nil {
		return nil, fmt.Errorf("cannot read the source directory: %v", err)
	}
	defer r.close()
	for _, f := range []string{"nixpacks.toml", "nixpacks.json"} {
		if r.exists(f) {
			return nil, fmt.Errorf("the repository configures Nixpacks (%s)", f)
		}
	}
	b := &tbuild{
		src:   src,
		repo:  r,
		bases: t.Bases,
		df:    &dockerfile{platform: nonEmpty(src.Platform, validate.DefaultPlatform), cacheKey: src.CacheKey, link: src.CopyLink},
		rec:   &Recipe{Language: d.Language, Framework: d.Framework, PackageManager: d.PackageManager},
	}
	switch d.Language {
	case "node", "bun":
		err = b.node()
	case "python":
		err = b.python()
	case "go":
		err = b.golang()
	case "rust":
		err = b.rust()
	case "ruby":
		err = b.ruby()
	default:
		err = fmt.Errorf("no template for %s (%s)", d.Framework, nonEmpty(d.Language, "unknown language"))
	}
	if err != nil {
		return nil, err
	}
	b.rec.Dockerfile = b.df.String()
	b.rec.Carried = b.df.carried
	if !r.exists(".dockerignore") {
		b.rec.Dockerignore = b.dockerignore()
	}
	return b.rec, nil
}

// Plan renders the template and writes the Dockerfile outside the build
// context (WorkDir), and a default .dockerignore into the context when the
// repository has none.
func (t Template) Plan(_ context.Context, src Source, log io.Writer) (Plan, error) {
	rec, err := t.Recipe(src)
	if err != nil {
		return Plan{}, failure.Wrap(failure.User, "no template fits this app", err)
	}
	if src.WorkDir == "" {
		return Plan{}, failure.Wrap(failure.Infrastructure, "the template planner has no work directory", nil)
	}
	dir := filepath.Join(src.WorkDir, "template")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Plan{}, failure.Wrap(failure.Infrastructure, "cannot create the template directory", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(rec.Dockerfile), 0o644); err != nil {
		return Plan{}, failure.Wrap(failure.Infrastructure, "cannot write the Dockerfile", err)
	}
	if rec.Dockerignore != "" {
		// The checkout is the runner's own copy: writing into it is safe.
		if err := os.WriteFile(filepath.Join(src.Dir, ".dockerignore"), []byte(rec.Dockerignore), 0o644); err != nil {
			return Plan{}, failure.Wrap(failure.Infrastructure, "cannot write the default .dockerignore", err)
		}
		fmt.Fprintf(log, "the repository has no .dockerignore: using a default one that leaves out %s\n",
			strings.Join(strings.Fields(rec.Dockerignore), " "))
	}
	for _, n := range rec.Notes {
		fmt.Fprintln(log, n)
	}
	fmt.Fprintf(log, "%s template: install %q, build %q, start %q\n", rec.Template, rec.Install, rec.Build, rec.Start)
	fmt.Fprintln(log, "Dockerfile (commit it as Dockerfile to take over the build):")
	for _, l := range strings.Split(strings.TrimRight(rec.Dockerfile, "\n"), "\n") {
		fmt.Fprintln(log, "  "+l)
	}
	return Plan{
		ContextDir:     src.Dir,
		DockerfileDir:  dir,
		DockerfileName: "Dockerfile",
		Recipe:         rec,
		Hints:          rec.hints,
	}, nil
}

// tbuild is one template rendering in progress.
type tbuild struct {
	src   Source
	repo  *repo
	bases BaseImages
	df    *dockerfile
	rec   *Recipe
}

// image resolves a base image for the app's declared version of lang.
func (b *tbuild) image(key, declared string, parts int) string {
	img := baseImages[key]
	v, ok := pickVersion(declared, img.def, parts)
	if !ok {
		b.note("declared %s version %q is not a version: using %s", img.lang, declared, v)
	}
	ref, note := b.bases.image(key, v)
	if note != "" {
		b.note("%s", note)
	}
	return ref
}

func (b *tbuild) note(format string, args ...any) {
	n := fmt.Sprintf(format, args...)
	for _, have := range b.rec.Notes {
		if have == n {
			return
		}
	}
	b.rec.Notes = append(b.rec.Notes, n)
}

// header says what wrote the Dockerfile.
func (b *tbuild) header() {
	b.df.comment("Written by af-builder's %s template for %s.\nCommit it as Dockerfile to build with it instead (the repository's Dockerfile wins).", b.rec.Template, b.rec.describe())
}

// startCommand is START_COMMAND, else the start command detection found
// (Procfile, nixpacks.toml), else the template's own.
func (b *tbuild) startCommand(own string) string {
	switch {
	case b.src.StartCommand != "":
		b.rec.hints.StartCommand, b.rec.hints.StartOrigin = b.src.StartCommand, "START_COMMAND"
		return b.src.StartCommand
	case b.src.Detected.StartCommand != "":
		return b.src.Detected.StartCommand
	}
	b.rec.hints.StartCommand, b.rec.hints.StartOrigin = own, "the "+b.rec.Template+" template's start command"
	return own
}

// buildStep runs BUILD_COMMAND when set, else the template's own build
// (none when own is empty).
func (b *tbuild) buildStep(own string, mounts ...cache) { b.buildStepAfter("", own, mounts...) }

// buildStepAfter is buildStep with prelude, a line of the template's own
// shell ending in "; ", run first in the same step (so what it exports
// reaches the build command, the user's included).
func (b *tbuild) buildStepAfter(prelude, own string, mounts ...cache) {
	if b.src.BuildCommand != "" {
		b.rec.Build = b.src.BuildCommand
		b.df.runUser(prelude+b.src.BuildCommand, mounts...)
		return
	}
	if own != "" {
		b.rec.Build = own
		b.df.run(prelude+own, mounts...)
	}
}

// start ends the runtime stage: port, user and the start command.
func (b *tbuild) start(cmd string) {
	b.rec.Start = cmd
	b.df.env("PORT", fmt.Sprint(detect.DefaultPort))
	b.df.line("USER %s", appUser)
	b.df.cmd(startArgv(cmd))
}

func nonEmpty(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

// portOfRuntime is the PORT every template image sets.
func portOfRuntime() int { return detect.DefaultPort }

func sortStrings(s []string) { slices.Sort(s) }
