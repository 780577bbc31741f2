// Package dockerd starts Debian's Docker engine (dockerd 20.10, with BuildKit
// and its own managed containerd) as a child process for tests, or uses one
// named by AF_TEST_DOCKER_HOST, and makes base images without pulling.
//
// The daemon runs with --bridge=none and --iptables=false: it never creates
// docker0 or touches the host's firewall, so builds must use network mode
// "host" or "none".
package dockerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/client"

	"github.com/alternatefutures/af-builder/internal/testinfra"
	"github.com/alternatefutures/af-builder/internal/testinfra/internal/child"
)

// EnvHost names a running engine to use instead of starting one, e.g.
// "unix:///var/run/docker.sock" or "tcp://127.0.0.1:2375".
const EnvHost = "AF_TEST_DOCKER_HOST"

// Options configure Start.
type Options struct {
	// DataRoot holds images and the build cache. Empty means a temp dir that
	// Stop removes. A persistent one (see CacheDir) keeps the cache between
	// runs; it is locked while in use, and a second daemon that finds it
	// locked (another test package running in parallel) falls back to a
	// temp dir rather than corrupting it or waiting for the other run.
	DataRoot string
	// LogWriter gets a copy of dockerd's output (it always goes to a log
	// file too, whose tail is in start errors).
	LogWriter io.Writer
	// StartTimeout bounds the wait for /_ping; default 60s.
	StartTimeout time.Duration
	// ExtraArgs are appended to dockerd's command line.
	ExtraArgs []string
}

// Daemon is a running engine.
type Daemon struct {
	mu       sync.Mutex // serializes Stop
	host     string
	external bool
	proc     *child.Process
	dir      string // temp dir: socket, exec root, log, maybe the data root
	dataRoot string
	lock     *os.File
	logPath  string
}

// CacheDir is the conventional persistent DataRoot,
// $XDG_CACHE_HOME/af-builder/dockerd (usually ~/.cache/af-builder/dockerd).
func CacheDir() (string, error) {
	c, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("dockerd cache dir: %w", err)
	}
	return filepath.Join(c, "af-builder", "dockerd"), nil
}

// FromEnv uses the engine named by AF_TEST_DOCKER_HOST when it is set (Stop
// then leaves it running), and otherwise starts one with Start.
func FromEnv(ctx context.Context, opts Options) (*Daemon, error) {
	host := os.Getenv(EnvHost)
	if host == "" {
		return Start(ctx, opts)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := client.New(client.WithHost(host))
	if err != nil {
		return nil, fmt.Errorf("%s=%s: %w", EnvHost, host, err)
	}
	defer c.Close()
	if _, err := c.Ping(pctx, client.PingOptions{}); err != nil {
		return nil, fmt.Errorf("%s=%s: ping: %w", EnvHost, host, err)
	}
	return &Daemon{host: host, external: true}, nil
}

// Start runs dockerd until Stop is called or ctx ends, and returns once its
// API answers. A failed start leaves nothing behind.
func Start(ctx context.Context, opts Options) (*Daemon, error) {
	bin, err := lookBinaries()
	if err != nil {
		return nil, fmt.Errorf("start dockerd: %w", err)
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("start dockerd: needs root (or set %s to a running engine)", EnvHost)
	}
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}

	// Temp dirs of test binaries that were killed hold whole image stores.
	child.SweepStale("afd", "dockerd.pid", 10*time.Minute)
	dir, err := child.ShortTempDir("afd")
	if err != nil {
		return nil, fmt.Errorf("start dockerd: %w", err)
	}
	d := &Daemon{dir: dir, logPath: filepath.Join(dir, "dockerd.log")}
	started := false
	defer func() {
		if !started {
			_ = d.Stop()
		}
	}()

	sock := filepath.Join(dir, "d.sock")
	execRoot := filepath.Join(dir, "x")
	// containerd.sock.ttrpc under the exec root is the longest socket.
	if longest := filepath.Join(execRoot, "containerd", "containerd.sock.ttrpc"); len(longest) >= 100 {
		return nil, fmt.Errorf("start dockerd: socket path %s is %d bytes, over the unix limit; set TMPDIR shorter", longest, len(longest))
	}
	d.host = "unix://" + sock

	d.dataRoot, d.lock, err = lockDataRoot(opts.DataRoot, dir, opts.LogWriter)
	if err != nil {
		return nil, fmt.Errorf("start dockerd: %w", err)
	}
	if d.lock != nil {
		// A daemon that was killed left its self-bind-mount (and maybe
		// overlays) on the data root; stacking another on top confuses it.
		if err := child.UnmountUnder(d.dataRoot); err != nil {
			return nil, fmt.Errorf("start dockerd: clean stale mounts: %w", err)
		}
	}

	// An explicit empty config keeps a developer's /etc/docker/daemon.json
	// (hosts, bridges, mirrors) out of the test daemon.
	cfg := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(cfg, []byte("{}\n"), 0o644); err != nil {
		return nil, fmt.Errorf("start dockerd: %w", err)
	}
	args := []string{
		"--config-file", cfg,
		"--data-root", d.dataRoot,
		"--exec-root", execRoot,
		"--pidfile", filepath.Join(dir, "dockerd.pid"),
		"-H", d.host,
		// No docker0, no NAT, no firewall rules, no sysctl writes: this
		// machine's private address space is off limits, and a test must
		// not change the host's network.
		"--bridge=none",
		"--iptables=false",
		"--ip6tables=false",
		"--ip-forward=false",
		"--ip-masq=false",
		"--userland-proxy=false",
		// A test daemon should stop quickly; containers are test fixtures.
		"--shutdown-timeout=5",
	}
	args = append(args, opts.ExtraArgs...)
	d.proc, err = child.Start(ctx, child.Config{
		Name:    "dockerd",
		Path:    bin,
		Args:    args,
		Env:     []string{"PATH=" + sbinPath(), "NOTIFY_SOCKET="},
		LogPath: d.logPath,
		// dockerd waits up to --shutdown-timeout for containers, then stops
		// its containerd.
		StopTimeout: 20 * time.Second,
		LogWriter:   opts.LogWriter,
	})
	if err != nil {
		return nil, fmt.Errorf("start dockerd: %w", err)
	}
	if err := waitPing(ctx, d.proc, sock, timeout); err != nil {
		return nil, fmt.Errorf("start dockerd: %w", err)
	}
	started = true
	return d, nil
}

// Host is the DOCKER_HOST value for this engine.
func (d *Daemon) Host() string { return d.host }

// External reports whether the engine came from AF_TEST_DOCKER_HOST.
func (d *Daemon) External() bool { return d.external }

// LogPath is the file dockerd logs to; empty for an external engine.
func (d *Daemon) LogPath() string { return d.logPath }

// DataRoot is the daemon's --data-root; empty for an external engine.
func (d *Daemon) DataRoot() string { return d.dataRoot }

// Client returns a new Engine API client for this daemon (API version
// negotiated on first use); the caller closes it.
func (d *Daemon) Client() (*client.Client, error) {
	return client.New(client.WithHost(d.host))
}

// Stop terminates dockerd (SIGTERM, SIGKILL after 20s), waits for it, and
// removes its temp dir. An external engine is left alone. Safe to call more
// than once. When ctx ends dockerd is stopped anyway, but only Stop removes
// the temp dir and releases a persistent data root.
func (d *Daemon) Stop() error {
	if d == nil || d.external {
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
	if d.lock != nil {
		if err := child.UnmountUnder(d.dataRoot); err != nil {
			errs = append(errs, err)
		}
		d.lock.Close() // releases the flock
		d.lock = nil
	}
	if err := child.RemoveAll(d.dir); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop dockerd: %w", err)
	}
	return nil
}

func lookBinaries() (string, error) {
	bin, err := testinfra.LookPath("dockerd", "docker.io")
	if err != nil {
		return "", err
	}
	// dockerd would only notice these when it first starts a container or
	// its containerd; fail early and by package name instead.
	for _, b := range [][2]string{{"containerd", "containerd"}, {"runc", "runc"}, {"containerd-shim-runc-v2", "containerd"}} {
		if _, err := testinfra.LookPath(b[0], b[1]); err != nil {
			return "", err
		}
	}
	return bin, nil
}

// sbinPath is PATH with the sbin dirs added: dockerd finds runc and
// containerd through PATH, and Debian installs runc in /usr/sbin.
func sbinPath() string {
	p := os.Getenv("PATH")
	for _, dir := range []string{"/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		if !strings.Contains(":"+p+":", ":"+dir+":") {
			p += ":" + dir
		}
	}
	return strings.TrimPrefix(p, ":")
}

// lockDataRoot returns the data root to use and, for a persistent one, the
// open lock file whose flock marks it in use.
func lockDataRoot(want, tmp string, logw io.Writer) (string, *os.File, error) {
	temp := filepath.Join(tmp, "data")
	if want == "" {
		return temp, nil, nil
	}
	if err := os.MkdirAll(want, 0o711); err != nil {
		return "", nil, fmt.Errorf("data root: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(want, ".af-testinfra.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", nil, fmt.Errorf("data root lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			msg := fmt.Sprintf("af-testinfra: data root %s is in use by another test daemon; using a temp data root (no build cache)\n", want)
			if logw != nil {
				_, _ = io.WriteString(logw, msg)
			}
			return temp, nil, nil
		}
		return "", nil, fmt.Errorf("data root lock: %w", err)
	}
	return want, f, nil
}

// waitPing polls /_ping over the socket with plain HTTP. The moby client is
// not used here: a failed ping during its version negotiation would pin it
// to the oldest API version.
func waitPing(ctx context.Context, p *child.Process, sock string, timeout time.Duration) error {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/_ping", nil)
		resp, err := hc.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && string(body) == "OK" {
				return nil
			}
			err = fmt.Errorf("/_ping answered %d %q", resp.StatusCode, body)
		}
		last = err
		select {
		case <-p.Done():
			return p.Exited()
		case <-ctx.Done():
			return fmt.Errorf("waiting for /_ping: %w\n%s", ctx.Err(), p.Tail())
		case <-deadline.C:
			return fmt.Errorf("no answer on /_ping within %s (last: %v)\n%s", timeout, last, p.Tail())
		case <-tick.C:
		}
	}
}
