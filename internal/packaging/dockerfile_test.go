package packaging

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

func parseDockerfile(t *testing.T) ([]instructions.Stage, []instructions.ArgCommand) {
	t.Helper()
	f, err := os.Open("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("parse Dockerfile: %v", err)
	}
	stages, meta, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("Dockerfile instructions: %v", err)
	}
	return stages, meta
}

func runLines(s instructions.Stage) []string {
	var out []string
	for _, c := range s.Commands {
		if r, ok := c.(*instructions.RunCommand); ok {
			out = append(out, strings.Join(r.CmdLine, " "))
		}
	}
	return out
}

func stageNamed(t *testing.T, stages []instructions.Stage, name string) instructions.Stage {
	t.Helper()
	for _, s := range stages {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no stage %q", name)
	return instructions.Stage{}
}

func TestRunnerBinaryIsBuiltStatic(t *testing.T) {
	stages, _ := parseDockerfile(t)
	build := stageNamed(t, stages, "build")
	var static bool
	for _, l := range runLines(build) {
		if strings.Contains(l, "CGO_ENABLED=0") && strings.Contains(l, "go build") && strings.Contains(l, "./runner") {
			static = true
		}
	}
	if !static {
		t.Errorf("the build stage does not build ./runner with CGO_ENABLED=0: %q", runLines(build))
	}
}

func TestNixpacksIsPinnedAndVerifiedByChecksum(t *testing.T) {
	stages, _ := parseDockerfile(t)
	nix := stageNamed(t, stages, "nixpacks")
	args := map[string]*string{}
	for _, c := range nix.Commands {
		if a, ok := c.(*instructions.ArgCommand); ok {
			for _, kv := range a.Args {
				args[kv.Key] = kv.Value
			}
		}
	}
	version := args["NIXPACKS_VERSION"]
	if version == nil || !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(*version) {
		t.Fatalf("NIXPACKS_VERSION must default to an exact version, got %v", version)
	}
	if _, ok := args["NIXPACKS_SHA256_AMD64"]; !ok {
		t.Fatalf("no NIXPACKS_SHA256_AMD64 argument")
	}
	joined := strings.Join(runLines(nix), "\n")
	for _, want := range []string{
		"releases/download/v${NIXPACKS_VERSION}/",
		`echo "${NIXPACKS_SHA256_AMD64}  /tmp/nixpacks.tar.gz" | sha256sum -c -`,
		`test -n "$NIXPACKS_SHA256_AMD64"`,
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("the nixpacks stage lacks %q", want)
		}
	}
	// The checksum must be checked before the archive is unpacked.
	if strings.Index(joined, "sha256sum -c") > strings.Index(joined, "tar -x") {
		t.Errorf("the archive is unpacked before its checksum is verified")
	}
}

func TestNothingIsPipedIntoAShell(t *testing.T) {
	stages, _ := parseDockerfile(t)
	pipeToShell := regexp.MustCompile(`\|\s*(ba|z)?sh\b`)
	for _, s := range stages {
		for _, l := range runLines(s) {
			if pipeToShell.MatchString(l) {
				t.Errorf("stage %s pipes a download into a shell: %s", s.Name, l)
			}
		}
	}
}

func TestFinalImageRunsTheRunnerAsANonRootUserWithoutGit(t *testing.T) {
	stages, _ := parseDockerfile(t)
	final := stages[len(stages)-1]
	var user string
	var entrypoint []string
	var copied []string
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.EntrypointCommand:
			entrypoint = c.CmdLine
		case *instructions.CopyCommand:
			copied = append(copied, c.SourcePaths...)
		}
	}
	if user == "" || strings.HasPrefix(user, "0") || strings.HasPrefix(user, "root") {
		t.Errorf("final USER = %q, want a non-root uid", user)
	}
	if !slices.Equal(entrypoint, []string{"/usr/local/bin/runner"}) {
		t.Errorf("ENTRYPOINT = %q", entrypoint)
	}
	for _, want := range []string{"/usr/local/bin/nixpacks", "/out/runner"} {
		if !slices.Contains(copied, want) {
			t.Errorf("the final image does not copy %s", want)
		}
	}
	installs := strings.Join(runLines(final), "\n")
	if !strings.Contains(installs, "ca-certificates") {
		t.Errorf("the final image has no CA certificates")
	}
	// The runner clones with go-git: a git binary would only add attack surface.
	if regexp.MustCompile(`install[^\n]*\bgit\b`).MatchString(installs) {
		t.Errorf("the final image installs git, which the runner does not use")
	}
}
