// Package registry runs Debian's Docker registry (distribution 2.8,
// `docker-registry serve`) on 127.0.0.1 with htpasswd auth for tests, and
// reads back what was pushed with plain registry HTTP.
//
// Docker treats 127.0.0.0/8 registries as insecure-allowed, so an engine can
// push to Addr() over plain HTTP without any daemon configuration.
package registry

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/alternatefutures/af-builder/internal/testinfra"
	"github.com/alternatefutures/af-builder/internal/testinfra/internal/child"
)

// Options configure Start.
type Options struct {
	// User and Password are the only credentials the registry accepts;
	// defaults "af-test" and a random password (see Registry.Password).
	User     string
	Password string
	// Dir is the storage root; empty means a temp dir that Stop removes.
	Dir string
	// LogWriter gets a copy of the registry's log.
	LogWriter io.Writer
	// StartTimeout bounds the wait for /v2/; default 30s.
	StartTimeout time.Duration
}

// Registry is a running registry.
type Registry struct {
	mu       sync.Mutex // serializes Stop
	addr     string
	user     string
	password string
	dir      string
	storage  string
	logPath  string
	proc     *child.Process
	http     *http.Client
}

// Start runs docker-registry until Stop is called or ctx ends, and returns
// once /v2/ answers 401. A failed start leaves nothing behind. When ctx ends
// the registry is stopped, but only Stop removes its temp dir.
func Start(ctx context.Context, opts Options) (*Registry, error) {
	bin, err := testinfra.LookPath("docker-registry", "docker-registry")
	if err != nil {
		return nil, fmt.Errorf("start registry: %w", err)
	}
	if opts.User == "" {
		opts.User = "af-test"
	}
	if strings.ContainsAny(opts.User, ":\n") {
		return nil, fmt.Errorf("start registry: user %q contains ':' or a newline", opts.User)
	}
	if opts.Password == "" {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		opts.Password = hex.EncodeToString(b)
	}
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	dir, err := os.MkdirTemp("", "af-registry-")
	if err != nil {
		return nil, fmt.Errorf("start registry: %w", err)
	}
	r := &Registry{
		user:     opts.User,
		password: opts.Password,
		dir:      dir,
		logPath:  filepath.Join(dir, "registry.log"),
		http: &http.Client{
			// No proxy: the registry is on loopback, whatever HTTP_PROXY says.
			Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4},
			Timeout:   60 * time.Second,
		},
	}
	started := false
	defer func() {
		if !started {
			_ = r.Stop()
		}
	}()

	storage := opts.Dir
	if storage == "" {
		storage = filepath.Join(dir, "storage")
	}
	r.storage = storage
	if err := os.MkdirAll(storage, 0o755); err != nil {
		return nil, fmt.Errorf("start registry: %w", err)
	}
	// distribution checks the password with bcrypt on every request, and a
	// push makes dozens; the minimum cost keeps that at microseconds. (It
	// accepts only bcrypt entries, and invents a random user if the file is
	// missing.)
	hash, err := bcrypt.GenerateFromPassword([]byte(opts.Password), bcrypt.MinCost)
	if err != nil {
		return nil, fmt.Errorf("start registry: %w", err)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(opts.User+":"+string(hash)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("start registry: %w", err)
	}

	// The port is picked by binding :0 and released for the registry to
	// bind, so another process can take it in between; retry on that.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("start registry: %w", err)
		}
		r.addr = "127.0.0.1:" + strconv.Itoa(port)
		cfg := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(cfg, []byte(config(r.addr, storage, htpasswd)), 0o644); err != nil {
			return nil, fmt.Errorf("start registry: %w", err)
		}
		r.proc, err = child.Start(ctx, child.Config{
			Name:        "docker-registry",
			Path:        bin,
			Args:        []string{"serve", cfg},
			LogPath:     r.logPath,
			LogWriter:   opts.LogWriter,
			StopTimeout: 5 * time.Second,
		})
		if err != nil {
			return nil, fmt.Errorf("start registry: %w", err)
		}
		lastErr = r.waitReady(ctx, timeout)
		if lastErr == nil {
			started = true
			return r, nil
		}
		_ = r.proc.Stop()
		if !strings.Contains(lastErr.Error(), "address already in use") {
			break
		}
	}
	return nil, fmt.Errorf("start registry: %w", lastErr)
}

func config(addr, storage, htpasswd string) string {
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	// JSON strings are valid YAML scalars, which quotes paths safely.
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	return `version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: ` + q(storage) + `
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: ` + q(addr) + `
  secret: ` + q(hex.EncodeToString(secret)) + `
auth:
  htpasswd:
    realm: af-test-registry
    path: ` + q(htpasswd) + `
`
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls GET /v2/ without credentials until it answers 401, which
// shows both that the registry listens and that auth is on.
func (r *Registry) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 2 * time.Second}
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.URL()+"/v2/", nil)
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
			err = fmt.Errorf("GET /v2/ answered %d, want 401", resp.StatusCode)
		}
		last = err
		select {
		case <-r.proc.Done():
			return r.proc.Exited()
		case <-ctx.Done():
			return fmt.Errorf("waiting for /v2/: %w\n%s", ctx.Err(), r.proc.Tail())
		case <-deadline.C:
			return fmt.Errorf("no 401 from /v2/ within %s (last: %v)\n%s", timeout, last, r.proc.Tail())
		case <-tick.C:
		}
	}
}

// Addr is "127.0.0.1:PORT", the registry part of an image reference.
func (r *Registry) Addr() string { return r.addr }

// Ref is the image reference "127.0.0.1:PORT/repo:tag" for this registry.
func (r *Registry) Ref(repo, tag string) string { return r.addr + "/" + repo + ":" + tag }

// URL is "http://127.0.0.1:PORT".
func (r *Registry) URL() string { return "http://" + r.addr }

// User is the accepted user name.
func (r *Registry) User() string { return r.user }

// Password is the accepted password.
func (r *Registry) Password() string { return r.password }

// LogPath is the registry's log file.
func (r *Registry) LogPath() string { return r.logPath }

// RegistryAuth is the X-Registry-Auth value the Engine API's ImagePush
// takes for this registry (base64url JSON of an AuthConfig).
func (r *Registry) RegistryAuth() string {
	b, _ := json.Marshal(map[string]string{"username": r.user, "password": r.password, "serveraddress": r.addr})
	return base64.URLEncoding.EncodeToString(b)
}

// Stop terminates the registry, waits for it and removes its temp dir (not
// a caller-given Dir). Safe to call more than once.
func (r *Registry) Stop() error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	if r.proc != nil {
		if err := r.proc.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if t, ok := r.http.Transport.(*http.Transport); ok {
		t.CloseIdleConnections()
	}
	if err := os.RemoveAll(r.dir); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop registry: %w", err)
	}
	return nil
}
