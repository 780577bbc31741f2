package baseimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/alternatefutures/af-builder/internal/testinfra"
	"github.com/alternatefutures/af-builder/internal/testinfra/internal/child"
)

// scriptVersion changes whenever the way a root filesystem is made changes,
// so that every cached one is rebuilt.
const scriptVersion = "1"

// HostCABundle is the host's CA bundle, trusted by every stand-in.
const HostCABundle = "/etc/ssl/certs/ca-certificates.crt"

// Options configure where root filesystems come from and go.
type Options struct {
	// CacheDir holds one directory per recipe hash; default
	// ~/.cache/af-builder/baseimages.
	CacheDir string
	// Sources are the Debian archives; default HostSources().
	Sources Sources
	// CABundle is installed as /etc/ssl/certs/ca-certificates.crt; default
	// HostCABundle.
	CABundle string
	// Log gets one line per slow step (debootstrap, apt-get, tar).
	Log io.Writer
}

func (o Options) withDefaults() (Options, error) {
	if o.CacheDir == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			return o, fmt.Errorf("base image cache dir: %w", err)
		}
		o.CacheDir = filepath.Join(c, "af-builder", "baseimages")
	}
	if o.Sources.Mirror == "" {
		o.Sources = HostSources()
	}
	if o.CABundle == "" {
		o.CABundle = HostCABundle
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return o, nil
}

func (o Options) logf(format string, args ...any) {
	if o.Log == nil {
		return
	}
	fmt.Fprintf(o.Log, "baseimage: "+format+"\n", args...)
}

// Recipe is everything a root filesystem is made from; its hash names the
// cache entry.
type recipe struct {
	Script   string
	Suite    string
	Sources  Sources
	Official string   `json:",omitempty"`
	Packages []string `json:",omitempty"`
	Setup    string   `json:",omitempty"`
	Go       string   `json:",omitempty"`
	Changes  []string `json:",omitempty"`
	CA       string   `json:",omitempty"`
}

func (r recipe) hash() string {
	b, _ := json.Marshal(r)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16]
}

// minbaseRecipe is the debootstrap step every stand-in starts from.
func minbaseRecipe(o Options) recipe {
	return recipe{Script: scriptVersion, Suite: suite, Sources: o.Sources}
}

func imageRecipe(img Image, o Options) (recipe, error) {
	r := minbaseRecipe(o)
	r.Official, r.Packages, r.Setup, r.Changes = img.Official, img.Packages, img.Setup, img.Changes
	ca, err := os.ReadFile(o.CABundle)
	if err != nil {
		return r, fmt.Errorf("CA bundle: %w", err)
	}
	sum := sha256.Sum256(ca)
	r.CA = hex.EncodeToString(sum[:])
	if img.GoRoot != "" {
		if r.Go, err = goVersion(img.GoRoot); err != nil {
			return r, err
		}
	}
	return r, nil
}

// RecipeHash is the cache key of img's root filesystem.
func RecipeHash(img Image, opts Options) (string, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return "", err
	}
	r, err := imageRecipe(img, o)
	if err != nil {
		return "", err
	}
	return r.hash(), nil
}

// Rootfs returns the path of img's root filesystem as a tar, building it
// first when the cache has none for its recipe. Callers in several processes
// may ask at once: one builds, the others wait for it.
func Rootfs(ctx context.Context, img Image, opts Options) (string, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return "", err
	}
	r, err := imageRecipe(img, o)
	if err != nil {
		return "", fmt.Errorf("stand-in for %s: %w", img.Official, err)
	}
	path, err := cached(ctx, o, r.hash(), func(work string) error {
		base, err := minbase(ctx, o)
		if err != nil {
			return err
		}
		return build(ctx, o, img, base, work)
	})
	if err != nil {
		return "", fmt.Errorf("stand-in for %s: %w", img.Official, err)
	}
	return path, nil
}

// minbase is the cached `debootstrap --variant=minbase bookworm` tree, as tar.
func minbase(ctx context.Context, o Options) (string, error) {
	return cached(ctx, o, minbaseRecipe(o).hash(), func(work string) error {
		if _, err := testinfra.LookPath("debootstrap", "debootstrap"); err != nil {
			return err
		}
		root := filepath.Join(work, "root")
		o.logf("debootstrap --variant=minbase %s from %s (a few minutes, once per recipe)", suite, o.Sources.Mirror)
		if err := run(ctx, work, "debootstrap", "--variant=minbase", suite, root, o.Sources.Mirror); err != nil {
			return err
		}
		// The downloaded .debs are half the tree and no image keeps them.
		if err := removeGlob(root, "var/cache/apt/archives/*.deb", "var/lib/apt/lists/*_*"); err != nil {
			return err
		}
		return writeTar(ctx, work, root)
	})
}

// build makes img's tree from the minbase tar in work/root and writes it
// as work/rootfs.tar.
func build(ctx context.Context, o Options, img Image, base, work string) error {
	root := filepath.Join(work, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return err
	}
	if err := run(ctx, work, "tar", "-C", root, "--numeric-owner", "-xpf", base); err != nil {
		return err
	}
	if err := writeFile(root, "etc/apt/sources.list", []byte(o.Sources.sourcesList()), 0o644); err != nil {
		return err
	}
	script := ""
	if len(img.Packages) > 0 {
		o.logf("%s: apt-get install %s (a few minutes, once per recipe)", img.Official, strings.Join(img.Packages, " "))
		script += "export DEBIAN_FRONTEND=noninteractive\n" +
			"apt-get update -qq\n" +
			"apt-get install -y -qq --no-install-recommends " + strings.Join(img.Packages, " ") + " >/dev/null\n" +
			"apt-get clean\n"
	}
	if img.Setup != "" {
		script += img.Setup + "\n"
	}
	if script != "" {
		resolv, err := os.ReadFile("/etc/resolv.conf")
		if err != nil {
			return fmt.Errorf("apt in a chroot needs the host's resolver: %w", err)
		}
		if err := writeFile(root, "etc/resolv.conf", resolv, 0o644); err != nil {
			return err
		}
		// A mount namespace of its own: /proc and /dev are unmounted with
		// it, even when this process is killed halfway.
		if err := run(ctx, work, "unshare", "--mount", "--fork", "--propagation", "private", "sh", "-ec",
			`mount -t proc proc "$1/proc"; mount --rbind /dev "$1/dev"; exec chroot "$1" /bin/sh -ec "$2"`,
			"sh", root, "set -x\n"+script); err != nil {
			return err
		}
		if err := writeFile(root, "etc/resolv.conf", nil, 0o644); err != nil {
			return err
		}
	}
	if img.GoRoot != "" {
		if err := os.MkdirAll(filepath.Join(root, "usr/local"), 0o755); err != nil {
			return err
		}
		if err := run(ctx, work, "cp", "-a", img.GoRoot, filepath.Join(root, "usr/local/go")); err != nil {
			return err
		}
	}
	ca, err := os.ReadFile(o.CABundle)
	if err != nil {
		return err
	}
	if err := writeFile(root, "etc/ssl/certs/ca-certificates.crt", ca, 0o644); err != nil {
		return err
	}
	if err := removeGlob(root, "var/lib/apt/lists/*_*", "var/cache/apt/*.bin", "var/log/apt/*", "var/log/dpkg.log"); err != nil {
		return err
	}
	return writeTar(ctx, work, root)
}

// cached returns dir/<key>/rootfs.tar, running make under the key's lock
// when it is absent. make gets an empty work dir and must leave
// work/rootfs.tar; the work dir of a build that was killed is removed by
// the next one.
func cached(ctx context.Context, o Options, key string, make func(work string) error) (string, error) {
	dir := filepath.Join(o.CacheDir, key)
	final := filepath.Join(dir, "rootfs.tar")
	if _, err := os.Stat(final); err == nil {
		return final, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	unlock, err := lock(ctx, filepath.Join(dir, "lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(final); err == nil {
		return final, nil // built by the process we waited for
	}
	stale, _ := filepath.Glob(filepath.Join(dir, "work-*"))
	for _, s := range stale {
		if err := os.RemoveAll(s); err != nil {
			return "", fmt.Errorf("remove a killed build's %s: %w", s, err)
		}
	}
	work, err := os.MkdirTemp(dir, "work-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	start := time.Now()
	if err := make(work); err != nil {
		return "", err
	}
	if err := os.Rename(filepath.Join(work, "rootfs.tar"), final); err != nil {
		return "", err
	}
	o.logf("built %s in %s", final, time.Since(start).Round(time.Second))
	return final, nil
}

// lock takes an exclusive flock on path, waiting while ctx allows.
func lock(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("wait for lock %s (another process is building it): %w", path, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// writeTar writes root as work/rootfs.tar: numeric owners, no /proc, /sys
// or /dev entries below the directories themselves (the engine provides
// those; the official images ship them empty).
func writeTar(ctx context.Context, work, root string) error {
	tmp := filepath.Join(work, "rootfs.tar")
	return run(ctx, work, "tar", "-C", root, "--numeric-owner", "--one-file-system",
		"--exclude=./proc/*", "--exclude=./sys/*", "--exclude=./dev/*", "-cf", tmp, ".")
}

// run runs a command with its output in work/log, whose tail is in the error.
func run(ctx context.Context, work, name string, args ...string) error {
	logf, err := os.OpenFile(filepath.Join(work, "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	// The whole group goes on cancel: apt's methods, dpkg's scripts.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", name, err, child.Tail(filepath.Join(work, "log"), 30))
	}
	return nil
}

func writeFile(root, rel string, data []byte, mode os.FileMode) error {
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	// A symlink here (resolv.conf often is one) would write outside root.
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.WriteFile(p, data, mode)
}

func removeGlob(root string, patterns ...string) error {
	for _, pat := range patterns {
		ms, err := filepath.Glob(filepath.Join(root, pat))
		if err != nil {
			return err
		}
		for _, m := range ms {
			if err := os.RemoveAll(m); err != nil {
				return err
			}
		}
	}
	return nil
}
