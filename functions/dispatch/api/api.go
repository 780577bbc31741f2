// Package api is dispatch's HTTP surface: the GitHub webhook and the /v1
// build API that service-cloud-api calls. It reads and authenticates
// requests, calls the core (package builds) and maps what comes back to an
// answer, in one place (answer). It is a plain http.Handler; it does not
// know whether net/http or the Lambda adapter is calling it.
package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"time"

	"github.com/alternatefutures/af-builder/functions/dispatch/buildreq"
	"github.com/alternatefutures/af-builder/functions/dispatch/builds"
	"github.com/alternatefutures/af-builder/functions/dispatch/logging"
)

// Config is the part of dispatch's configuration the HTTP layer uses.
type Config struct {
	WebhookSecret   []byte
	APISecret       []byte
	MaxWebhookBytes int64
	MaxAPIBytes     int64
	// WebhookBudget bounds the work done for one request: GitHub gives up
	// on a webhook after 10 s, and the API's caller waits as long.
	WebhookBudget time.Duration
	// MaxInFlight is how many webhooks and build requests may be worked on
	// at once; one more is answered 503 at once, so the caller's retry
	// (GitHub's redelivery, the platform's) comes back when there is room
	// rather than after a timeout. 0 means no limit.
	MaxInFlight int
}

// Server is the handler.
type Server struct {
	cfg   Config
	core  *builds.Service
	log   *slog.Logger
	now   func() time.Time
	mux   *http.ServeMux
	slots chan struct{}
}

// New returns the handler over core. log may be nil; now is the clock for
// signatures (nil: time.Now).
func New(cfg Config, core *builds.Service, log *slog.Logger, now func() time.Time) *Server {
	if cfg.WebhookBudget <= 0 {
		cfg.WebhookBudget = 8 * time.Second
	}
	s := &Server{cfg: cfg, core: core, log: log, now: now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if cfg.MaxInFlight > 0 {
		s.slots = make(chan struct{}, cfg.MaxInFlight)
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
	route("POST", "/webhooks/github", s.bounded(s.webhook))
	route("POST", "/v1/builds", s.bounded(s.createBuild))
	mux.HandleFunc("GET /v1/builds/{id}", s.bounded(s.getBuild))
	mux.HandleFunc("DELETE /v1/builds/{id}", s.bounded(s.deleteBuild))
	mux.HandleFunc("/v1/builds/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: "method " + r.Method + " not allowed on /v1/builds/{id}"})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "no route " + r.URL.Path})
	})
	s.mux = mux
	return s
}

// bounded gives a request WebhookBudget to be answered in, and a slot
// among MaxInFlight: without one it is answered 503 with Retry-After at
// once. The budget covers everything the request waits for (the API
// server's client-side rate limit included), so an answer never comes after
// the caller has given up.
func (s *Server) bounded(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.slots != nil {
			select {
			case s.slots <- struct{}{}:
				defer func() { <-s.slots }()
			default:
				s.logger(r.Context()).Warn("overloaded: request refused", "in_flight", cap(s.slots))
				w.Header().Set("Retry-After", "1")
				writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "dispatch is at capacity; retry shortly"})
				return
			}
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.WebhookBudget)
		defer cancel()
		h(w, r.WithContext(ctx))
	}
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

func withLogger(ctx context.Context, l *slog.Logger) context.Context {
	return logging.WithLogger(ctx, l)
}

func (s *Server) logger(ctx context.Context) *slog.Logger { return logging.From(ctx, s.log) }

// answer maps a failure to start a build to an answer: the one place
// where the core's verdict becomes an HTTP status.
func answer(err error) (int, errorBody) {
	p := builds.Explain(err)
	body := errorBody{Error: p.Message, Fields: p.Fields, Problems: p.Problems}
	switch p.Kind {
	case builds.Invalid:
		return http.StatusBadRequest, body
	case builds.NoAccess:
		return http.StatusUnprocessableEntity, body
	case builds.TimedOut:
		return http.StatusGatewayTimeout, body
	default:
		// Details go to the log only: they can name internal hosts.
		return http.StatusBadGateway, body
	}
}
