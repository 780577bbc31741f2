package kubenode

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupRoot is where the kubelet (cgroupfs driver, default cgroupRoot)
// creates its tree in every hierarchy: /sys/fs/cgroup/<hierarchy>/kubepods.
const cgroupRoot = "/sys/fs/cgroup"

// kubepodsDirs are the kubepods trees of every mounted hierarchy (cgroup
// v1 controllers, the named systemd one, and unified).
func kubepodsDirs() []string {
	var out []string
	entries, _ := os.ReadDir(cgroupRoot)
	for _, e := range entries {
		d := filepath.Join(cgroupRoot, e.Name(), "kubepods")
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			out = append(out, d)
		}
	}
	if fi, err := os.Stat(filepath.Join(cgroupRoot, "kubepods")); err == nil && fi.IsDir() {
		out = append(out, filepath.Join(cgroupRoot, "kubepods")) // cgroup v2
	}
	return out
}

// removeCgroups kills whatever still runs in a kubepods cgroup (only pods
// of this node can be there: one node per machine, see acquireLock) and
// removes the trees deepest first.
func removeCgroups() error {
	var errs []error
	for attempt := 0; attempt < 20; attempt++ {
		errs = nil
		for _, root := range kubepodsDirs() {
			var dirs []string
			_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					dirs = append(dirs, p)
				}
				return nil
			})
			// Deepest first.
			slices.SortFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
			for _, d := range dirs {
				killProcs(d)
				if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
					errs = append(errs, fmt.Errorf("kubenode: rmdir %s: %w", d, err))
				}
			}
		}
		if len(errs) == 0 {
			return nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return errors.Join(errs...)
}

func killProcs(dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// removeStaleCgroups clears kubepods trees a killed earlier run left. Called
// with the lock held, so no other node is running.
func removeStaleCgroups() error {
	if len(kubepodsDirs()) == 0 {
		return nil
	}
	if err := removeCgroups(); err != nil {
		return fmt.Errorf("kubenode: kubepods cgroups of an earlier node are still in use: %w", err)
	}
	return nil
}

// lockPath serialises nodes on one machine: the kubelet's cgroups are
// machine-wide.
const lockPath = "/run/af-builder-kubenode.lock"

func acquireLock(ctx context.Context) (*os.File, error) {
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("kubenode: lock: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("kubenode: lock: %w", err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("kubenode: another node holds %s: %w", lockPath, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func releaseLock(f *os.File) {
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	f.Close()
}
