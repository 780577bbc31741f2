// Package callbacksink is a stand-in for service-cloud-api's
// POST /internal/build-callback: a real HTTP server on 127.0.0.1 that checks
// requests as the API does, answers as the API does, and records every
// delivery for assertions. Tests can script failures (503s, 429s) to drive
// the runner's retry logic.
//
// What it enforces, in order:
//   - 400 for a body over 256 KiB, not a JSON object, or without a
//     string buildJobId;
//   - 401 when X-AF-Build-Token does not verify for that buildJobId
//     (shared/token, with the sink's secret);
//   - 400 for a status other than RUNNING, SUCCEEDED, FAILED, CANCELED;
//   - 404 for a job it was not told about, when it was told which exist;
//   - otherwise 200. The first terminal status is the job's final state;
//     later deliveries (terminal or not) are answered 200 and recorded but
//     change nothing.
//
// Logs are stored as service-cloud-api stores them: an accepted delivery
// that carries "logs" (a string, even an empty one) replaces the job's
// stored log (body.logs ?? job.logs), cut to its last MaxStoredLogChars
// characters; one without "logs" (or with null) keeps it.
package callbacksink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/alternatefutures/af-builder/shared/token"
)

// Path is where the API serves build callbacks.
const Path = "/internal/build-callback"

// TokenHeader carries the callback token.
const TokenHeader = "X-AF-Build-Token"

// MaxBody is the largest body the API accepts.
const MaxBody = 256 << 10

// MaxStoredLogChars is the most log the API keeps per job.
const MaxStoredLogChars = 60000

// Statuses the API knows; the last three are terminal.
const (
	StatusRunning   = "RUNNING"
	StatusSucceeded = "SUCCEEDED"
	StatusFailed    = "FAILED"
	StatusCanceled  = "CANCELED"
)

// IsTerminal reports whether status ends a build.
func IsTerminal(status string) bool {
	return status == StatusSucceeded || status == StatusFailed || status == StatusCanceled
}

// Options configure Start.
type Options struct {
	// Secret verifies X-AF-Build-Token; it is the secret dispatch mints
	// tokens with. Required.
	Secret []byte
	// Jobs, when non-nil, are the only build jobs that exist (AddJob adds
	// more); others get 404. When nil every job exists.
	Jobs []string
	// Now is the clock for token expiry; default time.Now.
	Now func() time.Time
}

// Delivery is one request the sink received.
type Delivery struct {
	// Seq numbers deliveries from 1 in arrival order.
	Seq int
	At  time.Time
	// Body is the raw request body (cut at MaxBody+1 bytes).
	Body   []byte
	Header http.Header
	// Payload is the decoded body; nil when it was not a JSON object.
	Payload map[string]any
	// BuildJobID and Status are Payload's fields when they were strings.
	BuildJobID string
	Status     string
	// Answered is the status code sent back.
	Answered int
	// Scripted is true when Answered came from Script or AlwaysAnswer
	// rather than from checking the request.
	Scripted bool
	// Reason says why a checked request was refused (empty for 200).
	Reason string
	// Final is true for the delivery that set the job's final state.
	Final bool
}

// Accepted reports whether the API would have processed the delivery:
// checked (not scripted) and answered 200.
func (d Delivery) Accepted() bool { return !d.Scripted && d.Answered == http.StatusOK }

// Sink is a running callback endpoint.
type Sink struct {
	opts   Options
	addr   string
	srv    *http.Server
	served chan struct{}
	stop   func() bool

	mu        sync.Mutex
	jobs      map[string]bool // nil: every job exists
	scripts   map[string][]int
	always    int
	delay     time.Duration
	received  []Delivery
	state     map[string]string // last accepted status, frozen at the first terminal one
	final     map[string]int    // index into received of the final delivery
	logs      map[string]string // the stored log, as the API keeps it
	changed   chan struct{}     // closed and replaced on every delivery
	closeOnce sync.Once
	closeErr  error
}

// Start serves on 127.0.0.1 on a free port until Stop is called or ctx
// ends.
func Start(ctx context.Context, opts Options) (*Sink, error) {
	if len(opts.Secret) == 0 {
		return nil, errors.New("start callback sink: Options.Secret is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Sink{
		opts:    opts,
		scripts: map[string][]int{},
		state:   map[string]string{},
		final:   map[string]int{},
		logs:    map[string]string{},
		changed: make(chan struct{}),
		served:  make(chan struct{}),
	}
	if opts.Jobs != nil {
		s.jobs = map[string]bool{}
		for _, j := range opts.Jobs {
			s.jobs[j] = true
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start callback sink: %w", err)
	}
	s.addr = ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc(Path, s.handle)
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() {
		defer close(s.served)
		_ = s.srv.Serve(ln)
	}()
	s.stop = context.AfterFunc(ctx, func() { _ = s.Stop() })
	return s, nil
}

// URL is the CALLBACK_URL for a runner:
// http://127.0.0.1:PORT/internal/build-callback.
func (s *Sink) URL() string { return "http://" + s.addr + Path }

// Stop shuts the server down, waiting up to 5s for requests in flight.
// Safe to call more than once.
func (s *Sink) Stop() error {
	s.closeOnce.Do(func() {
		s.stop()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			s.closeErr = fmt.Errorf("stop callback sink: %w", errors.Join(err, s.srv.Close()))
		}
		<-s.served
	})
	return s.closeErr
}

// Token mints a CALLBACK_TOKEN for buildJobID with the sink's secret, as
// dispatch would.
func (s *Sink) Token(buildJobID string) string {
	return token.Mint(s.opts.Secret, buildJobID, s.opts.Now())
}

// AddJob makes a job exist when the sink was started with Options.Jobs.
func (s *Sink) AddJob(buildJobID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.jobs != nil {
		s.jobs[buildJobID] = true
	}
}

// Script makes the next len(codes) requests for buildJobID (those whose
// body names it) answer codes in order, without any other processing;
// after that the job is handled normally again. Calls append.
func (s *Sink) Script(buildJobID string, codes ...int) {
	for _, c := range codes {
		if c < 100 || c > 599 {
			panic(fmt.Sprintf("callbacksink: Script code %d is not an HTTP status", c))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scripts[buildJobID] = append(s.scripts[buildJobID], codes...)
}

// AlwaysAnswer makes every request answer code without processing, after
// any per-job Script is used up; 0 restores normal behaviour.
func (s *Sink) AlwaysAnswer(code int) {
	if code != 0 && (code < 100 || code > 599) {
		panic(fmt.Sprintf("callbacksink: AlwaysAnswer code %d is not an HTTP status", code))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.always = code
}

// SetDelay holds every answer back by d (0 for none), e.g. to drive a
// client's request timeout. A client that gives up is recorded with the
// code the sink would have sent.
func (s *Sink) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Received returns a copy of every delivery so far, in arrival order.
func (s *Sink) Received() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivery(nil), s.received...)
}

// Deliveries returns the deliveries for buildJobID, in arrival order.
func (s *Sink) Deliveries(buildJobID string) []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Delivery
	for _, d := range s.received {
		if d.BuildJobID == buildJobID {
			out = append(out, d)
		}
	}
	return out
}

// State is the job's current status as the API would store it: the last
// accepted RUNNING, or the first accepted terminal status. Empty when no
// delivery for the job was accepted.
func (s *Sink) State(buildJobID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state[buildJobID]
}

// Logs is the job's log as the API would show it.
func (s *Sink) Logs(buildJobID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs[buildJobID]
}

// Post delivers a callback as a runner would (a token minted with the
// sink's secret), for tests that need the API to hold some state first.
// It returns the status code the sink answered.
func (s *Sink) Post(ctx context.Context, buildJobID, status string, logs *string) (int, error) {
	body := map[string]any{"buildJobId": buildJobID, "status": status}
	if logs != nil {
		body["logs"] = *logs
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL(), bytes.NewReader(raw))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(TokenHeader, s.Token(buildJobID))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// lastChars keeps the last n characters (runes) of s.
func lastChars(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[len(r)-n:])
}

// Terminal returns the delivery that gave the job its final status.
func (s *Sink) Terminal(buildJobID string) (Delivery, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.final[buildJobID]
	if !ok {
		return Delivery{}, false
	}
	return s.received[i], true
}

// WaitTerminal waits until the job has a final status, or ctx ends.
func (s *Sink) WaitTerminal(ctx context.Context, buildJobID string) (Delivery, error) {
	var d Delivery
	err := s.WaitFor(ctx, func([]Delivery) bool {
		var ok bool
		d, ok = s.terminalLocked(buildJobID)
		return ok
	})
	if err != nil {
		return Delivery{}, fmt.Errorf("wait for terminal callback of %s (%d deliveries): %w", buildJobID, len(s.Deliveries(buildJobID)), err)
	}
	return d, nil
}

func (s *Sink) terminalLocked(buildJobID string) (Delivery, bool) {
	i, ok := s.final[buildJobID]
	if !ok {
		return Delivery{}, false
	}
	return s.received[i], true
}

// WaitFor waits until cond, called with every delivery so far, returns
// true, or ctx ends. cond runs with the sink locked: it must not call the
// sink's methods.
func (s *Sink) WaitFor(ctx context.Context, cond func(received []Delivery) bool) error {
	for {
		s.mu.Lock()
		ok := cond(s.received)
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

func (s *Sink) handle(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	d := Delivery{At: time.Now(), Header: r.Header.Clone()}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	d.Body = body
	var tooBig bool
	if err == nil && len(body) > MaxBody {
		tooBig = true
	}
	if err == nil && !tooBig {
		// Numbers decode as float64, as encoding/json gives them anywhere.
		var p map[string]any
		if json.Unmarshal(body, &p) == nil && p != nil {
			d.Payload = p
			d.BuildJobID, _ = p["buildJobId"].(string)
			d.Status, _ = p["status"].(string)
		}
	}

	s.mu.Lock()
	delay := s.delay
	switch q := s.scripts[d.BuildJobID]; {
	case d.BuildJobID != "" && len(q) > 0:
		d.Answered, d.Scripted = q[0], true
		s.scripts[d.BuildJobID] = q[1:]
	case s.always != 0:
		d.Answered, d.Scripted = s.always, true
	}
	s.mu.Unlock()

	if !d.Scripted {
		d.Answered, d.Reason = s.check(r, d, err, tooBig)
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
		t.Stop()
	}

	s.mu.Lock()
	d.Seq = len(s.received) + 1
	if d.Accepted() {
		if _, done := s.final[d.BuildJobID]; !done {
			s.state[d.BuildJobID] = d.Status
			if l, ok := d.Payload["logs"].(string); ok {
				s.logs[d.BuildJobID] = lastChars(l, MaxStoredLogChars)
			}
			if IsTerminal(d.Status) {
				d.Final = true
				s.final[d.BuildJobID] = len(s.received)
			}
		}
	}
	s.received = append(s.received, d)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()

	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(d.Answered)
	if d.Answered == http.StatusOK {
		_, _ = io.WriteString(w, `{"ok":true}`)
		return
	}
	msg := d.Reason
	if d.Scripted {
		msg = "scripted answer"
	}
	b, _ := json.Marshal(map[string]string{"error": msg})
	_, _ = w.Write(b)
}

// check decides the answer the API would give.
func (s *Sink) check(r *http.Request, d Delivery, readErr error, tooBig bool) (int, string) {
	switch {
	case readErr != nil:
		return http.StatusBadRequest, "read body: " + readErr.Error()
	case tooBig:
		return http.StatusBadRequest, fmt.Sprintf("body over %d bytes", MaxBody)
	case d.Payload == nil:
		return http.StatusBadRequest, "body is not a JSON object"
	case d.BuildJobID == "":
		return http.StatusBadRequest, "buildJobId missing or not a string"
	}
	if err := token.Verify(s.opts.Secret, r.Header.Get(TokenHeader), d.BuildJobID, s.opts.Now()); err != nil {
		return http.StatusUnauthorized, "token: " + err.Error()
	}
	switch d.Status {
	case StatusRunning, StatusSucceeded, StatusFailed, StatusCanceled:
	default:
		return http.StatusBadRequest, fmt.Sprintf("unknown status %q", d.Status)
	}
	s.mu.Lock()
	known := s.jobs == nil || s.jobs[d.BuildJobID]
	s.mu.Unlock()
	if !known {
		return http.StatusNotFound, "unknown build job"
	}
	return http.StatusOK, ""
}
