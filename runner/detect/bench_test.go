package detect

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// largeTree builds a 10,000-file Next.js monorepo-ish tree: a real app at the
// root, a few workspace packages, and deep node_modules-like directories that
// detection must skip rather than walk.
func largeTree(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	write("package.json", `{"name":"big","workspaces":["packages/*"],"scripts":{"start":"next start"},"dependencies":{"next":"14","react":"18"}}`)
	write("package-lock.json", `{"lockfileVersion":3}`)
	write(".nvmrc", "20\n")
	files := 3
	for p := range 20 {
		write(fmt.Sprintf("packages/pkg%02d/package.json", p), `{"name":"p","dependencies":{"react":"18"}}`)
		files++
	}
	// Deep dependency trees: node_modules/a/node_modules/b/... as npm used to lay them out.
	for top := 0; files < 9000; top++ {
		path := "node_modules"
		for depth := range 12 {
			path = filepath.Join(path, fmt.Sprintf("dep%d_%d", top, depth), "node_modules")
			for f := 0; f < 6 && files < 9000; f++ {
				write(filepath.Join(path, fmt.Sprintf("file%d.js", f)), "module.exports = {}\n")
				files++
			}
		}
	}
	for ; files < 10000; files++ {
		write(fmt.Sprintf("src/components/c%d/index.tsx", files), "export default () => null\n")
	}
	for _, skipped := range []string{".git/objects/ab/cdef", ".next/cache/x", "dist/assets/a.js", "vendor/x/y.go", "target/debug/x", "venv/lib/x.py"} {
		write(skipped, "x")
	}
	return dir
}

func TestLargeTreeIsDetectedWithoutWalkingIt(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 10,000-file tree")
	}
	dir := largeTree(t)
	r := detectWithin(t, dir)
	checkResult(t, r, want{framework: "next", port: 8080, pm: "npm", monorepo: "npm-workspaces", packages: packagesList(20)})
}

func packagesList(n int) []string {
	var out []string
	for p := range n {
		out = append(out, fmt.Sprintf("packages/pkg%02d", p))
	}
	return out
}

func BenchmarkDetectLargeTree(b *testing.B) {
	dir := largeTree(b)
	for b.Loop() {
		if _, err := Detect(context.Background(), dir); err != nil {
			b.Fatal(err)
		}
	}
}
