// Package realapps holds af-builder's real test applications, with their
// lockfiles committed and no installed dependencies: building one fetches real
// packages from the npm registry or the Go module proxy (or, for Python, finds
// them in the Debian stand-in's system site-packages, PyPI being unreachable
// here). The end-to-end tests and `make bench-build` commit them to the test
// git server and build them through the real runner.
//
// The apps live in testdata/<name>/ beside this file (testdata so that the Go
// tool ignores the Go app's own go.mod); Dir finds them from the source tree,
// which is where tests and the benchmark run.
package realapps

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/alternatefutures/af-builder/internal/testinfra/baseimage"
	"github.com/alternatefutures/af-builder/internal/testinfra/gitserver"
)

// App is one test application and what a build of it must give.
type App struct {
	// Name is its directory under testdata.
	Name string
	// Framework is the detectedFramework a build reports.
	Framework string
	// Answer is a string its / page contains when it runs.
	Answer string
	// SourceFile is the file the benchmark edits for a warm build: an
	// application source file, not a manifest or lockfile.
	SourceFile string
	// Stack says what it is, for tables and logs.
	Stack string
	// undeclaredNode: the app names no Node version (see NextJS).
	undeclaredNode bool
}

// Express: Node 18 (engines.node), Express 4 and morgan from the npm
// registry, package-lock.json committed.
var Express = App{Name: "express", Framework: "express", Answer: `"message":"hello from express"`,
	SourceFile: "greeting.js", Stack: "Node 18, Express 4, npm ci"}

// Go: chi v5 from the Go module proxy, go.sum committed, built by the host's
// Go release (the golang stand-in).
var Go = App{Name: "goservice", Framework: "chi", Answer: `"message":"hello from go"`,
	SourceFile: "greeting.go", Stack: "Go, chi v5, go mod download"}

// Flask: Flask 2.2.2 and gunicorn 20.1.0, exactly Debian bookworm's, which
// the python stand-in has in its system site-packages.
var Flask = App{Name: "flask", Framework: "flask", Answer: `"message":"hello from flask"`,
	SourceFile: "greeting.py", Stack: "Python 3.11, Flask 2.2, gunicorn (Debian's)"}

// NextJS is the default `create-next-app@15.0.7 --yes` project (App Router,
// TypeScript, Tailwind 3, ESLint, local Geist fonts), unchanged but for its
// package name: 366 npm packages from the lockfile, then `next build`. The
// 15.0 line's project is the one that builds on Node 18 with no other
// network: from 15.2 the default project uses Tailwind 4 (Node 20 only) and
// fetches its fonts from Google at build time.
//
// The project declares no Node version, so the template would take its
// default (Node 22), of which there is no stand-in: Debian bookworm, whose
// packages the stand-ins are made from, ships Node 18. BASE_IMAGE_NODE says
// so explicitly (BuildEnv).
var NextJS = App{Name: "nextjs", Framework: "next", Answer: "Get started by editing",
	SourceFile: "app/page.tsx", Stack: "Next.js 15.0, create-next-app default, npm ci + next build",
	undeclaredNode: true}

// BuildEnv is what a build of the app sets so that its template's base
// images are the stand-ins under mirror (baseimage.DefaultMirror when they
// are in the engine's image store, a registry prefix when they were pushed).
func (a App) BuildEnv(mirror string) map[string]string {
	env := map[string]string{"BASE_IMAGE_MIRROR": mirror}
	if a.undeclaredNode {
		env["BASE_IMAGE_NODE"] = baseimage.Node().Ref(mirror)
	}
	return env
}

// All are the apps the benchmark builds.
var All = []App{Express, Go, Flask, NextJS}

// Dir is the app's directory in the source tree.
func (a App) Dir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("realapps: no caller information")
	}
	return filepath.Join(filepath.Dir(file), "testdata", a.Name)
}

// Files reads the app as a commit's tree for the test git server.
func (a App) Files() (map[string]gitserver.File, error) {
	root := a.Dir()
	files := map[string]gitserver.File{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			// Never commit what an install or a build left behind.
			switch d.Name() {
			case "node_modules", ".next", "__pycache__", ".venv":
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if info.Mode()&0o111 != 0 {
			mode = 0o755
		}
		files[filepath.ToSlash(rel)] = gitserver.File{Content: string(b), Mode: mode}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read app %s: %w", a.Name, err)
	}
	if _, ok := files[a.SourceFile]; !ok {
		return nil, fmt.Errorf("app %s has no %s", a.Name, a.SourceFile)
	}
	return files, nil
}

// SourceChange is the one-file change of a warm build: the app's source
// file with a line added (a comment in its language), so the dependency
// layers stay valid and the source and build steps run again.
func (a App) SourceChange(files map[string]gitserver.File, n int) map[string]gitserver.File {
	f := files[a.SourceFile]
	comment := "//"
	if strings.HasSuffix(a.SourceFile, ".py") {
		comment = "#"
	}
	f.Content += fmt.Sprintf("%s warm build %d\n", comment, n)
	return map[string]gitserver.File{a.SourceFile: f}
}
