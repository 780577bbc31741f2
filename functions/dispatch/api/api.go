// Package api is dispatch's HTTP surface: the GitHub webhook, the /v1 build
// API that service-cloud-api calls, and the orchestration behind both —
// mint the credentials, assemble the contract, submit, supersede, cancel.
// It is a plain http.Handler; it does not know whether net/http or the
// Lambda adapter is calling it.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"time"

	"github.com/alternatefutures/af-builder/functions/dispatch/buildreq"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor"
	"github.com/alternatefutures/af-builder/functions/dispatch/githubapp"
	"github.com/alternatefutures/af-builder/functions/dispatch/subscriptions"
	"github.com/alternatefutures/af-builder/shared/contract"
)

// Minter mints repository-scoped installation tokens (githubapp.Minter).
type Minter interface {
	RepoToken(ctx context.Context, installationID int64, owner, repo string) (githubapp.Token, error)
}

// Config is the part of dispatch's configuration the handler uses.
type Config struct {
	WebhookSecret  []byte
	APISecret      []byte
	CallbackSecret []byte
	// CallbackURL is service-cloud-api's base URL.
	CallbackURL   string
	GitHubURL     string
	RegistryUser  string
	RegistryToken string

	Supersede       bool
	MaxWebhookBytes int64
	MaxAPIBytes     int64
	// WebhookBudget bounds the work done for one webhook.
	WebhookBudget time.Duration
	// CallbackTimeout bounds one CANCELED report, retries included: it is
	// sent while a caller (GitHub, the API, Lambda) waits.
	CallbackTimeout time.Duration

	BuildTimeout      time.Duration
	LogStreamInterval time.Duration
	BuildNetwork      string
	Planner           contract.PlannerDefaults
}

// Deps are the parts the handler drives.
type Deps struct {
	Executor      executor.Executor
	GitHub        Minter
	Subscriptions subscriptions.Source
	Logger        *slog.Logger
	// Now is the clock for tokens and signatures; nil means time.Now.
	Now func() time.Time
}

// Server is the handler.
type Server struct {
	cfg  Config
	exec executor.Executor
	gh   Minter
	subs subscriptions.Source
	log  *slog.Logger
	now  func() time.Time
	mux  *http.ServeMux
}

// New returns the handler. Nothing is contacted until a request needs it.
func New(cfg Config, d Deps) *Server {
	if cfg.CallbackTimeout <= 0 {
		cfg.CallbackTimeout = 4 * time.Second
	}
	if cfg.WebhookBudget <= 0 {
		cfg.WebhookBudget = 8 * time.Second
	}
	s := &Server{cfg: cfg, exec: d.Executor, gh: d.GitHub, subs: d.Subscriptions, log: d.Logger, now: d.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	mux := http.NewServeMux()
	route := func(method, path string, h http.HandlerFunc) {
		mux.HandleFunc(method+" "+path, h)
		// The method-less twin turns other methods into a JSON 405
		// rather than the catch-all's 404.
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: "method " + r.Method + " not allowed on " + path})
		})
	}
	route("GET", "/healthz", s.healthz)
	route("POST", "/webhooks/github", s.webhook)
	route("POST", "/v1/builds", s.createBuild)
	mux.HandleFunc("GET /v1/builds/{id}", s.getBuild)
	mux.HandleFunc("DELETE /v1/builds/{id}", s.deleteBuild)
	mux.HandleFunc("/v1/builds/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: "method " + r.Method + " not allowed on /v1/builds/{id}"})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "no route " + r.URL.Path})
	})
	s.mux = mux
	return s
}

// ServeHTTP logs every request (never its headers or body) and turns a
// panic into a 500 instead of a dropped connection.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	log := s.log.With("method", r.Method, "path", r.URL.Path)
	if id := safeID(r.Header.Get("X-Request-Id")); id != "" {
		log = log.With("request_id", id)
	}
	if id := safeID(r.Header.Get("X-GitHub-Delivery")); id != "" {
		log = log.With("delivery", id)
	}
	r = r.WithContext(withLogger(r.Context(), log))
	defer func() {
		if p := recover(); p != nil {
			log.Error("panic while handling request", "panic", fmt.Sprint(p))
			if !rec.wrote {
				writeJSON(rec, http.StatusInternalServerError, errorBody{Error: "internal error"})
			}
		}
		lvl := slog.LevelInfo
		if rec.status >= 500 {
			lvl = slog.LevelError
		}
		log.Log(r.Context(), lvl, "request", "status", rec.status, "duration_ms", time.Since(start).Milliseconds())
	}()
	s.mux.ServeHTTP(rec, r)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// errorBody is every error answer's shape.
type errorBody struct {
	Error    string             `json:"error"`
	Fields   []string           `json:"fields,omitempty"`
	Problems []buildreq.Problem `json:"problems,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		code, body = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(append(body, '\n'))
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.status, r.wrote = http.StatusOK, true
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the writer underneath.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

var safeIDRe = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// safeID keeps caller-supplied ids out of the logs unless they look like ids.
func safeID(s string) string {
	if safeIDRe.MatchString(s) {
		return s
	}
	return ""
}

type logKey struct{}

func withLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, logKey{}, l)
}

func (s *Server) logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(logKey{}).(*slog.Logger); ok {
		return l
	}
	return s.log
}

// failure classifies an error from starting a build into an answer.
func failure(err error) (int, errorBody) {
	var inv *buildreq.InvalidError
	switch {
	case errors.As(err, &inv):
		return http.StatusBadRequest, errorBody{Error: inv.Error(), Fields: inv.Fields(), Problems: inv.Problems}
	case errors.Is(err, githubapp.ErrNoAccess):
		return http.StatusUnprocessableEntity, errorBody{
			Error:  "the GitHub App installation cannot access this repository",
			Fields: []string{"installationId", "repoOwner", "repoName"},
		}
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, errorBody{Error: "timed out starting the build"}
	default:
		// Details go to the log only: they can name internal hosts.
		return http.StatusBadGateway, errorBody{Error: "could not start the build"}
	}
}
