package plan

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alternatefutures/af-builder/runner/detect"
)

// The stand-in proves the runner uses the CLI as documented; this test keeps
// us honest against the real program wherever it is installed (the runner
// image has it; the test machines cannot get it).
func TestRealNixpacksWritesADockerfileForANodeApp(t *testing.T) {
	bin, err := exec.LookPath("nixpacks")
	if err != nil {
		t.Skip("the real nixpacks is not on PATH (it cannot be installed on the test machines); the stand-in tests cover the CLI contract")
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "nixpacks ") {
		t.Skipf("%s is not the real nixpacks (--version said %q)", bin, out)
	}
	dir := app(t, map[string]string{
		"package.json": `{"name":"hello","version":"1.0.0","scripts":{"start":"node index.js"}}`,
		"index.js":     `require("http").createServer((q, s) => s.end("hi")).listen(process.env.PORT)`,
	})
	p, log, err := nixpacksPlan(t, Nixpacks{Bin: bin}, Source{Dir: dir, CacheKey: "real-nixpacks-test"})
	if err != nil {
		t.Fatalf("Plan with the real nixpacks: %v\nlog:\n%s", err, log)
	}
	df, err := os.ReadFile(filepath.Join(p.DockerfileDir, p.DockerfileName))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(df), "FROM ") || !strings.Contains(string(df), "PORT") {
		t.Errorf("the generated Dockerfile has no FROM or lacks PORT:\n%s", df)
	}
	if detect.Refine(detect.Result{}, p.Hints).StartCommand == "" {
		t.Errorf("nixpacks plan gave no start command")
	}
}
