package plan

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/alternatefutures/af-builder/runner/detect"
)

func TestStartCommandOverrideReachesThePlanAndThePort(t *testing.T) {
	invocations := recordInvocations(t)
	dir := app(t, map[string]string{"main.py": "import fastapi\n", "requirements.txt": "fastapi\nuvicorn\n"})
	eightThousand := 8000
	src := Source{
		Dir:          dir,
		Detected:     detect.Result{Framework: "fastapi", Port: &eightThousand},
		StartCommand: "uvicorn main:app --host 0.0.0.0 --port 9001",
	}
	p, log, err := nixpacksPlan(t, Nixpacks{Bin: standin}, src)
	if err != nil {
		t.Fatalf("Plan: %v\nlog:\n%s", err, log)
	}
	refined := detect.Refine(src.Detected, p.Hints)
	if refined.Port == nil || *refined.Port != 9001 || refined.Framework != "fastapi" {
		t.Errorf("refined = port %v framework %q; want the override's 9001, label kept", refined.Port, refined.Framework)
	}
	plan := invocations()[0]
	if plan.Args[0] != "plan" || !slices.Contains(plan.Args, "--start-cmd") {
		t.Errorf("nixpacks plan did not get the start override: %q", plan.Args)
	}
}

func TestACommittedNixpacksDirectoryIsNotFollowed(t *testing.T) {
	recordInvocations(t)
	dir := app(t, map[string]string{"start.sh": "exec ./server\n"})
	elsewhere := t.TempDir()
	if err := os.WriteFile(filepath.Join(elsewhere, "Dockerfile"), []byte("FROM attacker\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, filepath.Join(dir, ".nixpacks")); err != nil {
		t.Fatal(err)
	}
	p, log, err := nixpacksPlan(t, Nixpacks{Bin: standin}, Source{Dir: dir})
	if err != nil {
		t.Fatalf("Plan: %v\nlog:\n%s", err, log)
	}
	if fi, err := os.Lstat(p.DockerfileDir); err != nil || !fi.IsDir() {
		t.Fatalf(".nixpacks is not a fresh directory: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(filepath.Join(elsewhere, "Dockerfile")); string(b) != "FROM attacker\n" {
		t.Errorf("nixpacks wrote through the committed symlink: %q", b)
	}
}
