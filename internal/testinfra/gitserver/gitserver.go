// Package gitserver serves git repositories over smart HTTP for tests, the
// way GitHub serves them to a build: git's own git-http-backend under
// net/http/cgi, with Basic auth where the user is "x-access-token" and the
// password an installation token.
//
// Every repository allows fetching any reachable commit by SHA
// (uploadpack.allowReachableSHA1InWant), as GitHub does: go-git speaks
// protocol v0 and needs it for a shallow fetch of a pinned commit.
package gitserver

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/alternatefutures/af-builder/internal/testinfra"
)

// TokenUser is the Basic-auth user name GitHub expects with an installation
// token.
const TokenUser = "x-access-token"

const backendPath = "/usr/lib/git-core/git-http-backend"

// Options configure Start.
type Options struct {
	// Token is the password that must accompany TokenUser. Empty serves
	// every repository without auth, like a public GitHub repository.
	Token string
	// LogWriter gets a copy of git-http-backend's stderr.
	LogWriter io.Writer
}

// Request is one HTTP request the server saw.
type Request struct {
	Method string
	// Path is the URL path, e.g. "/o/r.git/info/refs".
	Path string
	// Query is the raw query, e.g. "service=git-upload-pack".
	Query string
	// Authorized is whether the credentials were accepted.
	Authorized bool
	// Status is the answer's HTTP status.
	Status int
	// GitProtocol is the Git-Protocol header ("version=2" from the git CLI,
	// empty from go-git's v0).
	GitProtocol string
	Time        time.Time
}

// Server is a running git HTTP server.
type Server struct {
	addr    string
	root    string // temp dir: repos/, home/, work/, backend.log
	repos   string
	gitBin  string
	srv     *http.Server
	served  chan struct{}
	logFile *os.File
	stop    func() bool // unregisters the ctx watcher

	mu    sync.Mutex
	token string
	// also holds earlier tokens that are still accepted (AcceptToken).
	also     map[string]bool
	requests []Request
	repoSet  map[string]*Repo

	stopOnce sync.Once
	stopErr  error
}

// Start serves on 127.0.0.1 on a free port until Stop is called or ctx
// ends.
func Start(ctx context.Context, opts Options) (*Server, error) {
	gitBin, err := testinfra.LookPath("git", "git")
	if err != nil {
		return nil, fmt.Errorf("start git server: %w", err)
	}
	backend, err := testinfra.LookPath(backendPath, "git")
	if err != nil {
		return nil, fmt.Errorf("start git server: %w", err)
	}
	root, err := os.MkdirTemp("", "af-gitserver-")
	if err != nil {
		return nil, fmt.Errorf("start git server: %w", err)
	}
	s := &Server{root: root, repos: filepath.Join(root, "repos"), gitBin: gitBin, token: opts.Token, repoSet: map[string]*Repo{}}
	fail := func(err error) (*Server, error) {
		if s.logFile != nil {
			s.logFile.Close()
		}
		os.RemoveAll(root)
		return nil, fmt.Errorf("start git server: %w", err)
	}
	for _, d := range []string{s.repos, filepath.Join(root, "home")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fail(err)
		}
	}
	s.logFile, err = os.Create(filepath.Join(root, "backend.log"))
	if err != nil {
		return fail(err)
	}
	var stderr io.Writer = s.logFile
	if opts.LogWriter != nil {
		stderr = io.MultiWriter(s.logFile, opts.LogWriter)
	}
	h := &cgi.Handler{
		Path: backend,
		Root: "/",
		Dir:  s.repos,
		Env: append(gitEnv(filepath.Join(root, "home")),
			"GIT_PROJECT_ROOT="+s.repos,
			"GIT_HTTP_EXPORT_ALL=1",
		),
		InheritEnv: []string{"PATH"},
		Stderr:     stderr,
		Logger:     log.New(stderr, "git-http-backend: ", 0),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	s.addr = ln.Addr().String()
	s.srv = &http.Server{
		Handler:           s.handler(h),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(stderr, "gitserver: ", 0),
	}
	s.served = make(chan struct{})
	go func() {
		defer close(s.served)
		_ = s.srv.Serve(ln)
	}()
	s.stop = context.AfterFunc(ctx, func() { _ = s.Stop() })
	return s, nil
}

func (s *Server) handler(backend http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, GitProtocol: r.Header.Get("Git-Protocol"), Time: time.Now()}
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			rec.Status = sw.status
			if rec.Status == 0 {
				rec.Status = http.StatusOK
			}
			s.mu.Lock()
			s.requests = append(s.requests, rec)
			s.mu.Unlock()
		}()
		s.mu.Lock()
		tok := s.token
		user, pass, ok := r.BasicAuth()
		earlier := ok && user == TokenUser && s.also[pass]
		s.mu.Unlock()
		if tok != "" && !earlier {
			if !ok || user != TokenUser || subtle.ConstantTimeCompare([]byte(pass), []byte(tok)) != 1 {
				sw.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(sw, "authentication required", http.StatusUnauthorized)
				return
			}
		}
		rec.Authorized = true
		// Pushes go through Repo.Commit, never over HTTP.
		if strings.HasSuffix(r.URL.Path, "/git-receive-pack") || r.URL.Query().Get("service") == "git-receive-pack" {
			http.Error(sw, "push over HTTP is not served", http.StatusForbidden)
			return
		}
		backend.ServeHTTP(sw, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// URL is "http://127.0.0.1:PORT".
func (s *Server) URL() string { return "http://" + s.addr }

// Addr is "127.0.0.1:PORT".
func (s *Server) Addr() string { return s.addr }

// SetToken makes tok the only accepted token, e.g. to make a minted one
// "expire".
func (s *Server) SetToken(tok string) {
	s.mu.Lock()
	s.token = tok
	s.also = nil
	s.mu.Unlock()
}

// AcceptToken adds tok to the accepted tokens, keeping the ones accepted
// before: GitHub's installation tokens each stay valid until they expire,
// so a build whose token was minted before another build's still clones.
func (s *Server) AcceptToken(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token == "" {
		s.token = tok
		return
	}
	if s.also == nil {
		s.also = map[string]bool{}
	}
	s.also[tok] = true
}

// Requests returns a copy of every request seen so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// RequestCount is len(Requests()).
func (s *Server) RequestCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

// Fetches counts the authorized upload-pack POSTs for repo ("owner/name"):
// one per clone or fetch that actually transferred objects (ref
// advertisement alone is a GET and does not count).
func (s *Server) Fetches(repo string) int {
	p := "/" + strings.TrimSuffix(repo, ".git") + ".git/git-upload-pack"
	n := 0
	for _, r := range s.Requests() {
		if r.Method == http.MethodPost && r.Path == p && r.Authorized {
			n++
		}
	}
	return n
}

// Stop shuts the server down (waiting up to 5s for requests in flight) and
// removes its repositories. Safe to call more than once.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		s.stop()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var errs []error
		if err := s.srv.Shutdown(ctx); err != nil {
			errs = append(errs, err, s.srv.Close())
		}
		<-s.served
		s.logFile.Close()
		errs = append(errs, os.RemoveAll(s.root))
		if err := errors.Join(errs...); err != nil {
			s.stopErr = fmt.Errorf("stop git server: %w", err)
		}
	})
	return s.stopErr
}

// gitEnv isolates git from the developer's configuration (signing,
// templates, hooks, safe.directory rules) so commits and serving behave the
// same on every machine.
func gitEnv(home string) []string {
	return []string{
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
		"LC_ALL=C",
	}
}
