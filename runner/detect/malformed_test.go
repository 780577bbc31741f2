package detect

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// detectWithin runs Detect on dir and fails when it errs or takes longer than
// a second, more under the race detector (a generous bound: the point is
// "never hangs").
func detectWithin(t *testing.T, dir string) Result {
	t.Helper()
	start := time.Now()
	r, err := Detect(context.Background(), dir)
	if err != nil {
		t.Fatalf("Detect: %v", err)
	}
	if d := time.Since(start); d > timeScale*time.Second {
		t.Errorf("Detect took %v", d)
	}
	return r
}

func TestBrokenPackageJSONIsUnknownWithReason(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "package.json"), `{"name": "x", "dependencies": {"next": "14"`)
	writeFile(t, filepath.Join(dir, "package-lock.json"), `{}`)
	r := detectWithin(t, dir)
	checkResult(t, r, want{framework: "unknown", language: "node", port: 0, pm: "npm",
		reason: "package.json: invalid JSON at byte 43 -> cannot tell the framework"})
}

func TestPackageJSONThatIsNotAnObject(t *testing.T) {
	for _, content := range []string{`[]`, `null`, `"next"`, `42`} {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "package.json"), content)
		r := detectWithin(t, dir)
		checkResult(t, r, want{framework: "unknown", language: "node", reason: "not a JSON object"})
	}
}

func TestWrongTypedFieldsAreIgnoredNotFatal(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "package.json"), `{"scripts": 5, "engines": ["x"], "dependencies": {"express": "^4", "weird": {"a": 1}}}`)
	writeFile(t, filepath.Join(dir, "index.js"), `require('express')().listen(process.env.PORT)`)
	r := detectWithin(t, dir)
	checkResult(t, r, want{framework: "express", language: "node", port: 8080})
}

func TestHugeManifestIsRefusedNotRead(t *testing.T) {
	dir := t.TempDir()
	big := `{"dependencies": {"next": "14"}, "padding": "` + strings.Repeat("x", 5<<20) + `"}`
	writeFile(t, filepath.Join(dir, "package.json"), big)
	r := detectWithin(t, dir)
	checkResult(t, r, want{framework: "unknown", language: "node", reason: "package.json: larger than 1 MiB, ignored"})
}

func TestBinaryJunkManifests(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	junk := make([]byte, 64<<10)
	for i := range junk {
		junk[i] = byte(rng.UintN(256))
	}
	dir := t.TempDir()
	for _, name := range []string{"package.json", "pyproject.toml", "Cargo.toml", "go.mod", "Gemfile", "composer.json",
		"pnpm-workspace.yaml", "Dockerfile", "Procfile", "deno.json", "mix.exs", "pom.xml", "nixpacks.toml", ".nvmrc", "Pipfile"} {
		if err := os.WriteFile(filepath.Join(dir, name), junk, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := detectWithin(t, dir)
	// A Dockerfile detection cannot read is still the repository's build
	// recipe: the runner builds with it, without port hints from it.
	if r.Framework != "dockerfile" || !r.HasDockerfile || r.Port != nil {
		t.Errorf("junk gave framework %q, hasDockerfile %v, port %v; want dockerfile, true, none", r.Framework, r.HasDockerfile, r.Port)
	}
	if !hasReason(r, "Dockerfile present but not readable as text") {
		t.Errorf("no reason about the unreadable Dockerfile; reasons:\n%s", strings.Join(r.Reasons, "\n"))
	}
	if !hasReason(r, "package.json: binary content") {
		t.Errorf("no reason about package.json; reasons:\n%s", strings.Join(r.Reasons, "\n"))
	}
	if r.Versions["node"] != "" {
		t.Errorf("a node version was read from junk: %q", r.Versions["node"])
	}
}

func TestSymlinksOutOfTheTreeAreNotFollowed(t *testing.T) {
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "package.json"), `{"dependencies": {"next": "14"}}`)
	writeFile(t, filepath.Join(outside, "Dockerfile"), "FROM scratch\nEXPOSE 1234\n")
	writeFile(t, filepath.Join(outside, "apps", "web", "package.json"), `{"dependencies": {"next": "14"}}`)

	dir := t.TempDir()
	for name, target := range map[string]string{
		"package.json": filepath.Join(outside, "package.json"),
		"Dockerfile":   filepath.Join(outside, "Dockerfile"),
		"apps":         filepath.Join(outside, "apps"),
		".nvmrc":       "/dev/zero",
		"go.mod":       "../../../../../../../../etc/passwd",
	} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Skipf("symlinks unsupported: %v", err)
		}
	}
	writeFile(t, filepath.Join(dir, "pnpm-workspace.yaml"), "packages:\n  - 'apps/*'\n  - '../*'\n")
	r := detectWithin(t, dir)
	// The symlinked Dockerfile is reported (the plan phase refuses it) but never read.
	if r.Framework == "next" || !r.HasDockerfile || (r.Port != nil && *r.Port == 1234) {
		t.Errorf("detection read through a symlink out of the tree: %+v", r)
	}
	for _, want := range []string{
		"package.json: symlink points outside the source tree",
		"Dockerfile: symlink points outside the source tree",
		`workspace glob "../*" leaves the directory`,
	} {
		if !hasReason(r, want) {
			t.Errorf("no reason %q; reasons:\n%s", want, strings.Join(r.Reasons, "\n"))
		}
	}
	if r.Monorepo == nil || len(r.Monorepo.Packages) != 0 {
		t.Errorf("monorepo = %+v, want pnpm with no packages reachable", r.Monorepo)
	}
}

func TestSymlinksInsideTheTreeAreFollowed(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "config", "package.json"), `{"scripts": {"start": "next start"}, "dependencies": {"next": "14"}}`)
	if err := os.Symlink("config/package.json", filepath.Join(dir, "package.json")); err != nil {
		t.Skipf("symlinks unsupported: %v", err)
	}
	r := detectWithin(t, dir)
	checkResult(t, r, want{framework: "next", port: 8080})
}

func TestSymlinkLoopsInWorkspacesEnd(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "package.json"), `{"workspaces": ["packages/**"]}`)
	writeFile(t, filepath.Join(dir, "packages", "a", "package.json"), `{"name": "a"}`)
	if err := os.Symlink("..", filepath.Join(dir, "packages", "a", "loop")); err != nil {
		t.Skipf("symlinks unsupported: %v", err)
	}
	r := detectWithin(t, dir)
	if r.Monorepo == nil || !strings.HasPrefix(strings.Join(r.Monorepo.Packages, ","), "packages/a") {
		t.Errorf("monorepo = %+v, want packages/a first", r.Monorepo)
	}
}

func TestDirectoryNamedLikeAManifest(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "package.json"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := detectWithin(t, dir)
	checkResult(t, r, want{framework: "unknown", reason: "package.json: not a regular file"})
}

func TestBrokenTOMLManifests(t *testing.T) {
	cases := map[string]struct {
		file, content, reason string
	}{
		"pyproject":       {"pyproject.toml", "[project\nname = ", "pyproject.toml: invalid TOML at line 2"},
		"cargo":           {"Cargo.toml", "[package]\nname = \"x\nedition = 2021", "Cargo.toml: invalid TOML"},
		"deeply nested":   {"pyproject.toml", "a = " + strings.Repeat("[", 500000), "pyproject.toml: nested too deeply"},
		"nested in lines": {"Cargo.toml", "a = " + strings.Repeat("[\n", 200000), "Cargo.toml: nested too deeply"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, c.file), c.content)
			r := detectWithin(t, dir)
			if !hasReason(r, c.reason) {
				t.Errorf("no reason %q; reasons:\n%s", c.reason, strings.Join(r.Reasons, "\n"))
			}
			if r.Framework != "unknown" {
				t.Errorf("framework = %q, want unknown", r.Framework)
			}
		})
	}
}

// Scripts that call each other many times over must not multiply the work.
func TestScriptBombIsBounded(t *testing.T) {
	var scripts []string
	for i := range 10 {
		next := i + 1
		scripts = append(scripts, `"s`+itoa(i)+`": "`+strings.Repeat("npm run s"+itoa(next)+" && ", 50)+`true"`)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "package.json"), `{"scripts": {"start": "npm run s0", `+strings.Join(scripts, ", ")+`}, "dependencies": {"express": "4"}}`)
	writeFile(t, filepath.Join(dir, "Procfile"), "web: npm start\n")
	r := detectWithin(t, dir)
	if r.Framework != "express" {
		t.Errorf("framework = %q, want express", r.Framework)
	}
}

func TestManyFilesAtTheRoot(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "go.mod"), "module x\n\ngo 1.22\n")
	for i := range 3000 {
		if err := os.WriteFile(filepath.Join(dir, "f"+itoa(i)+".txt"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := detectWithin(t, dir)
	checkResult(t, r, want{framework: "go", port: 0})
}

func TestReadBudgetStopsMonorepoReads(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "pnpm-workspace.yaml"), "packages: ['p/*']\n")
	pad := bytes.Repeat([]byte(" "), 100<<10)
	for i := range 150 {
		writeFile(t, filepath.Join(dir, "p", "pkg"+itoa(i), "package.json"), `{"dependencies": {"next": "14"}}`+string(pad))
	}
	r := detectWithin(t, dir)
	if r.Monorepo == nil || len(r.Monorepo.Packages) != 150 {
		t.Fatalf("monorepo = %+v, want 150 packages", r.Monorepo)
	}
	if len(r.Monorepo.Frameworks) > maxWorkspaceReads {
		t.Errorf("labelled %d packages, want at most %d", len(r.Monorepo.Frameworks), maxWorkspaceReads)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// Inputs built to make a careless parser quadratic: each is 1 MiB or less
// and must still be read in well under a second.
func TestPathologicalManifestsStayFast(t *testing.T) {
	cases := map[string]string{
		"Dockerfile":          "FROM x\nCMD a" + strings.Repeat(" \\\n b", 200000) + "\n",
		"pnpm-workspace.yaml": "packages: [" + strings.Repeat("\n'a/*',", 100000),
		"deno.json":           `{"tasks": {"start": "x"` + strings.Repeat(",\n  ", 200000) + "}}",
		"Procfile":            "web: " + strings.Repeat("npm start && ", 70000) + "true\n",
		"requirements.txt":    strings.Repeat("-r requirements.txt\n", 50000),
		"Gemfile":             strings.Repeat("gem 'x'\n", 120000),
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			if len(content) > maxManifestBytes {
				t.Fatalf("%s is %d bytes, over the manifest cap: the case tests nothing", name, len(content))
			}
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, name), content)
			writeFile(t, filepath.Join(dir, "package.json"), `{"scripts": {"start": "npm start"}}`)
			detectWithin(t, dir)
		})
	}
}

func TestDockerfileStageChainsAreBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("FROM scratch AS s0\nENV PORT=1\n")
	for i := 1; i < 20000; i++ {
		b.WriteString("FROM s" + itoa(i-1) + " AS s" + itoa(i) + "\nEXPOSE $PORT\n")
	}
	start := time.Now()
	parseDockerfile([]byte(b.String()))
	if d := time.Since(start); d > timeScale*time.Second {
		t.Errorf("parsing took %v", d)
	}
}
