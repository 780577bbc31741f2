package plan

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alternatefutures/af-builder/runner/detect"
	"github.com/alternatefutures/af-builder/runner/failure"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func wantPlanError(t *testing.T, err error, class failure.Class, text string) {
	t.Helper()
	var fe *failure.Error
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v (%T), want a *failure.Error", err, err)
	}
	if fe.Class != class {
		t.Errorf("phase/class = %s/%s, want plan/%s (%v)", fe.Phase, fe.Class, class, err)
	}
	if !strings.Contains(fe.Message, text) {
		t.Errorf("message %q does not say %q", fe.Message, text)
	}
}

func TestDockerfilePlansTheRepositorysDockerfile(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "Dockerfile"), "FROM scratch\n")
	detected := detect.Result{Framework: "dockerfile", HasDockerfile: true}
	var log bytes.Buffer
	p, err := Dockerfile{}.Plan(context.Background(), Source{Dir: dir, Detected: detected}, &log)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	if p.Kind != "dockerfile" || p.ContextDir != dir || p.DockerfileDir != dir || p.DockerfileName != "Dockerfile" {
		t.Errorf("plan = %+v, want the Dockerfile at the root of %s", p, dir)
	}
	if p.Detected.Framework != "dockerfile" {
		t.Errorf("detection result lost: %+v", p.Detected)
	}
	if log.String() != "using the repository's Dockerfile\n" {
		t.Errorf("log = %q", log.String())
	}
}

func TestDockerfileIgnoresOverridesAndSaysSo(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "Dockerfile"), "FROM scratch\n")
	for _, src := range []Source{
		{Dir: dir, BuildCommand: "make release"},
		{Dir: dir, StartCommand: "./server"},
	} {
		var log bytes.Buffer
		p, err := Dockerfile{}.Plan(context.Background(), src, &log)
		if err != nil {
			t.Fatalf("Plan: %v", err)
		}
		if p.Kind != "dockerfile" {
			t.Errorf("kind = %q", p.Kind)
		}
		if !strings.Contains(log.String(), "overrides are not used") {
			t.Errorf("log does not say the overrides are ignored: %q", log.String())
		}
	}
}

func TestDockerfileMustBeARegularFile(t *testing.T) {
	t.Run("symlink inside the repository", func(t *testing.T) {
		dir := t.TempDir()
		write(t, filepath.Join(dir, "docker", "Dockerfile.prod"), "FROM scratch\n")
		if err := os.Symlink("docker/Dockerfile.prod", filepath.Join(dir, "Dockerfile")); err != nil {
			t.Fatal(err)
		}
		_, err := Dockerfile{}.Plan(context.Background(), Source{Dir: dir}, &bytes.Buffer{})
		wantPlanError(t, err, failure.User, "regular file, not a symlink")
	})
	t.Run("symlink out of the repository", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Symlink("/etc/passwd", filepath.Join(dir, "Dockerfile")); err != nil {
			t.Fatal(err)
		}
		_, err := Dockerfile{}.Plan(context.Background(), Source{Dir: dir}, &bytes.Buffer{})
		wantPlanError(t, err, failure.User, "regular file, not a symlink")
	})
	t.Run("directory", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, "Dockerfile"), 0o755); err != nil {
			t.Fatal(err)
		}
		_, err := Dockerfile{}.Plan(context.Background(), Source{Dir: dir}, &bytes.Buffer{})
		wantPlanError(t, err, failure.User, "regular file, not a directory")
	})
	t.Run("missing", func(t *testing.T) {
		_, err := Dockerfile{}.Plan(context.Background(), Source{Dir: t.TempDir()}, &bytes.Buffer{})
		wantPlanError(t, err, failure.User, "no Dockerfile")
	})
}

func TestForChoosesByDockerfile(t *testing.T) {
	nix := Nixpacks{Bin: "/opt/nixpacks"}
	if p := For(Source{Detected: detect.Result{HasDockerfile: true}}, nix); p != (Dockerfile{}) {
		t.Errorf("with a Dockerfile: %T, want Dockerfile", p)
	}
	if p := For(Source{Detected: detect.Result{Framework: "next"}}, nix); p != Planner(nix) {
		t.Errorf("without a Dockerfile: %#v, want the given Nixpacks", p)
	}
}
