package child

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ShortTempDir makes a temp dir whose path is short enough for the unix
// sockets that will live under it. A socket path must fit sun_path (108 bytes
// on Linux, 104 elsewhere), and dockerd's managed containerd nests its
// sockets three levels down; a long TMPDIR (macOS-style, or t.TempDir() with
// a long test name) would overflow it.
func ShortTempDir(prefix string) (string, error) {
	return os.MkdirTemp(shortBase(), prefix)
}

func shortBase() string {
	base := os.TempDir()
	// Leaves room for "/afdNNNNNNNNNN/x/containerd/containerd.sock.ttrpc".
	if len(base) > 50 {
		base = "/tmp"
	}
	return base
}

// UnmountUnder detaches every mount at or below dir, deepest first. dockerd
// bind-mounts its data root onto itself and leaves overlay mounts behind
// when it is killed; RemoveAll cannot delete through them.
func UnmountUnder(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if r, err := filepath.EvalSymlinks(dir); err == nil {
		dir = r
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil // not Linux: nothing of ours can be mounted
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			points = append(points, mp)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var firstErr error
	for _, mp := range points {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && err != syscall.EINVAL && err != syscall.ENOENT && firstErr == nil {
			firstErr = fmt.Errorf("unmount %s: %w", mp, err)
		}
	}
	return firstErr
}

// unescapeMountinfo undoes the octal escapes (\040 for space etc.) of
// /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// RemoveAll unmounts what is left under dir and removes it.
func RemoveAll(dir string) error {
	if dir == "" {
		return nil
	}
	uerr := UnmountUnder(dir)
	if err := os.RemoveAll(dir); err != nil {
		if uerr != nil {
			return fmt.Errorf("%w (after %v)", err, uerr)
		}
		return err
	}
	return nil
}

// SweepStale removes dirs named prefix* under the short temp base that a
// killed test left behind: older than minAge and without a live process in
// their pidfile. Whatever is still in use (a daemon of a parallel test run)
// has a live pid or is young, and is left alone.
func SweepStale(prefix, pidfile string, minAge time.Duration) {
	base := shortBase()
	es, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range es {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		dir := filepath.Join(base, e.Name())
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < minAge {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(dir, pidfile)); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				if err := syscall.Kill(pid, 0); err == nil || err == syscall.EPERM {
					continue
				}
			}
		}
		_ = RemoveAll(dir)
	}
}
