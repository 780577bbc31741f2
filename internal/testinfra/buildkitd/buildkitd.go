// Package buildkitd starts BuildKit's daemon for tests, the way package
// dockerd starts the Docker engine: a child process with a state directory of
// its own, listening on a unix socket inside it, stopped (and its directory
// removed) by one call.
//
// The binary is the one tools/buildkitd/build.sh builds from the Go module
// proxy at the buildkit version this module links (so daemon and client
// match): AF_TEST_BUILDKITD names it, else it is looked for in that script's
// cache directory. It runs as root with Debian's runc (package runc), the OCI
// worker and no containerd worker, and RUN steps use the host's network: the
// machine has no bridge a container could use.
package buildkitd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	bkclient "github.com/moby/buildkit/client"

	"github.com/alternatefutures/af-builder/internal/testinfra"
	"github.com/alternatefutures/af-builder/internal/testinfra/internal/child"
)

// EnvBinary names a buildkitd binary to use instead of build.sh's cached one.
const EnvBinary = "AF_TEST_BUILDKITD"

// Options configure Start.
type Options struct {
	// Root is buildkitd's state directory (--root: snapshots, content, the
	// local cache). Empty means a fresh one inside the temp dir, removed by
	// Stop: a brand-new builder, the case the registry cache is for.
	Root string
	// LogWriter gets a copy of buildkitd's output (it always goes to a log
	// file too, whose tail is in start errors).
	LogWriter io.Writer
	// StartTimeout bounds the wait for the daemon's first answer; default 60s.
	StartTimeout time.Duration
	// ExtraArgs are appended to buildkitd's command line.
	ExtraArgs []string
}

// Daemon is a running buildkitd.
type Daemon struct {
	mu      sync.Mutex // serializes Stop
	proc    *child.Process
	dir     string
	root    string
	addr    string
	logPath string
}

// Version is the buildkit version the project's go.mod requires, the one
// build.sh builds the daemon at: from this binary's build info when it has
// it, else (test binaries carry no dependency list) from the go.mod found
// above the working directory.
func Version() (string, error) {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "github.com/moby/buildkit" {
				if m.Replace != nil {
					return m.Replace.Version, nil
				}
				return m.Version, nil
			}
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/alternatefutures/af-builder\n") {
			for _, l := range strings.Split(string(b), "\n") {
				if f := strings.Fields(l); len(f) >= 2 && f[0] == "github.com/moby/buildkit" {
					return f[1], nil
				}
			}
			return "", fmt.Errorf("%s/go.mod does not require github.com/moby/buildkit", dir)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no build info and no af-builder go.mod above the working directory")
		}
		dir = parent
	}
}

// Binary is the buildkitd to run: AF_TEST_BUILDKITD, else
// ~/.cache/af-builder/buildkitd/<Version>/buildkitd. The error says how to
// build it.
func Binary() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		return p, nil
	}
	v, err := Version()
	if err != nil {
		return "", fmt.Errorf("buildkitd binary: %w", err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = filepath.Join(os.Getenv("HOME"), ".cache")
	}
	p := filepath.Join(cache, "af-builder", "buildkitd", v, "buildkitd")
	if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("buildkitd %s not found at %s: run tools/buildkitd/build.sh "+
			"(about 8 minutes cold; or point %s at a buildkitd binary)", v, p, EnvBinary)
	}
	return p, nil
}

// Start runs buildkitd until Stop is called or ctx ends, and returns once it
// lists its workers. A failed start leaves nothing behind.
func Start(ctx context.Context, opts Options) (*Daemon, error) {
	bin, err := Binary()
	if err != nil {
		return nil, fmt.Errorf("start buildkitd: %w", err)
	}
	runc, err := testinfra.LookPath("runc", "runc")
	if err != nil {
		return nil, fmt.Errorf("start buildkitd: %w", err)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("start buildkitd: needs root (the OCI worker runs runc and mounts overlays)")
	}
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}

	// Temp dirs of killed test binaries hold whole snapshot stores.
	child.SweepStale("afb", "buildkitd.pid", 10*time.Minute)
	dir, err := child.ShortTempDir("afb")
	if err != nil {
		return nil, fmt.Errorf("start buildkitd: %w", err)
	}
	d := &Daemon{dir: dir, logPath: filepath.Join(dir, "buildkitd.log"), root: opts.Root}
	started := false
	defer func() {
		if !started {
			_ = d.Stop()
		}
	}()
	if d.root == "" {
		d.root = filepath.Join(dir, "root")
	}
	if err := os.MkdirAll(d.root, 0o700); err != nil {
		return nil, fmt.Errorf("start buildkitd: %w", err)
	}
	d.addr = "unix://" + filepath.Join(dir, "bk.sock")

	// An explicit empty config keeps a developer's /etc/buildkit/buildkitd.toml
	// (mirrors, GC policy, registries) out of the test daemon.
	cfg := filepath.Join(dir, "buildkitd.toml")
	if err := os.WriteFile(cfg, nil, 0o644); err != nil {
		return nil, fmt.Errorf("start buildkitd: %w", err)
	}
	args := []string{
		"--config", cfg,
		"--root", d.root,
		"--addr", d.addr,
		"--oci-worker-binary", runc,
		// No CNI bridge: this machine's private address space is off limits.
		"--oci-worker-net", "host",
		"--containerd-worker=false",
	}
	args = append(args, opts.ExtraArgs...)
	d.proc, err = child.Start(ctx, child.Config{
		Name:        "buildkitd",
		Path:        bin,
		Args:        args,
		Env:         []string{"PATH=" + filepath.Dir(runc) + ":" + os.Getenv("PATH")},
		LogPath:     d.logPath,
		StopTimeout: 15 * time.Second,
		LogWriter:   opts.LogWriter,
	})
	if err != nil {
		return nil, fmt.Errorf("start buildkitd: %w", err)
	}
	// For SweepStale: a live pid marks the dir as in use.
	_ = os.WriteFile(filepath.Join(dir, "buildkitd.pid"), []byte(strconv.Itoa(d.proc.Pid())), 0o644)
	if err := d.waitReady(ctx, timeout); err != nil {
		return nil, fmt.Errorf("start buildkitd: %w", err)
	}
	started = true
	return d, nil
}

func (d *Daemon) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		c, err := bkclient.New(ctx, d.addr)
		if err == nil {
			actx, cancel := context.WithTimeout(ctx, 2*time.Second)
			var ws []*bkclient.WorkerInfo
			ws, err = c.ListWorkers(actx)
			cancel()
			c.Close()
			if err == nil && len(ws) > 0 {
				return nil
			}
			if err == nil {
				err = errors.New("no workers yet")
			}
		}
		last = err
		select {
		case <-d.proc.Done():
			return d.proc.Exited()
		case <-ctx.Done():
			return fmt.Errorf("waiting for workers: %w\n%s", ctx.Err(), d.proc.Tail())
		case <-deadline.C:
			return fmt.Errorf("no workers listed within %s (last: %v)\n%s", timeout, last, d.proc.Tail())
		case <-tick.C:
		}
	}
}

// Address is the BUILDKIT_HOST value for this daemon: unix://DIR/bk.sock.
func (d *Daemon) Address() string { return d.addr }

// Root is the daemon's state directory.
func (d *Daemon) Root() string { return d.root }

// LogPath is the file buildkitd logs to.
func (d *Daemon) LogPath() string { return d.logPath }

// Client dials the daemon; the caller closes it.
func (d *Daemon) Client(ctx context.Context) (*bkclient.Client, error) {
	return bkclient.New(ctx, d.addr)
}

// Stop terminates buildkitd (SIGTERM, SIGKILL after 15s), waits for it,
// unmounts whatever it left mounted and removes its temp dir (a caller-given
// Root is kept). Safe to call more than once.
func (d *Daemon) Stop() error {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	if d.proc != nil {
		if err := d.proc.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("%w\n%s", err, d.proc.Tail()))
		}
	}
	// A killed daemon leaves overlay mounts of running steps behind.
	for _, dir := range []string{d.dir, d.root} {
		if dir == "" {
			continue
		}
		if err := child.UnmountUnder(dir); err != nil {
			errs = append(errs, err)
		}
	}
	if err := child.RemoveAll(d.dir); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop buildkitd: %w", err)
	}
	return nil
}
