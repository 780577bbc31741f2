//go:build unix

package detect

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Opening a FIFO for reading blocks until a writer comes: detection must
// refuse it without opening it.
func TestFIFOManifestDoesNotHang(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"package.json", "Dockerfile", "go.mod"} {
		if err := syscall.Mkfifo(filepath.Join(dir, name), 0o644); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
	}
	r := detectWithin(t, dir)
	if !hasReason(r, "package.json: not a regular file") {
		t.Errorf("no reason about the FIFO; reasons:\n%s", strings.Join(r.Reasons, "\n"))
	}
	if r.HasDockerfile {
		t.Error("a FIFO named Dockerfile counted as a Dockerfile")
	}
}
