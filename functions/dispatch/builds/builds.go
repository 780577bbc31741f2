// Package builds is dispatch's core: it starts a build (mints its
// credentials, assembles the runner contract, submits it), handles a push
// for every service that tracks it, cancels and supersedes builds, and
// reaps the ones whose runner died unreported. It knows neither HTTP nor
// Lambda: package api translates requests into calls here, and the serve
// loop and the Lambda schedule call Reap.
package builds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/alternatefutures/af-builder/functions/dispatch/buildreq"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor"
	"github.com/alternatefutures/af-builder/functions/dispatch/githubapp"
	"github.com/alternatefutures/af-builder/functions/dispatch/logging"
	"github.com/alternatefutures/af-builder/functions/dispatch/replay"
	"github.com/alternatefutures/af-builder/functions/dispatch/subscriptions"
	"github.com/alternatefutures/af-builder/shared/callback"
	"github.com/alternatefutures/af-builder/shared/contract"
	"github.com/alternatefutures/af-builder/shared/token"
)

// Minter mints repository-scoped installation tokens (githubapp.Minter).
type Minter interface {
	RepoToken(ctx context.Context, installationID int64, owner, repo string) (githubapp.Token, error)
}

// Config is the part of dispatch's configuration the core uses.
type Config struct {
	CallbackSecret []byte
	// CallbackURL is service-cloud-api's base URL.
	CallbackURL string
	// CallbackPlainHTTPHosts is CALLBACK_PLAIN_HTTP_HOSTS, as configured:
	// it judges callbackBaseUrl and goes on in the runner's contract.
	CallbackPlainHTTPHosts string
	GitHubURL              string
	RegistryUser           string
	RegistryToken          string
	// Runner is what every build's contract gets unless the request says
	// otherwise.
	Runner contract.RunnerDefaults

	// Supersede cancels older unfinished builds of a service and branch.
	Supersede bool
	// CallbackTimeout bounds one report dispatch sends itself, retries
	// included: a cancel on request sends it while the caller waits.
	CallbackTimeout time.Duration
	// FollowUpTimeout bounds the work a push leaves running after its
	// answer (superseding, closing reserved builds); 30 s when zero.
	FollowUpTimeout time.Duration
	// ReplayRetention is how long dispatched builds are remembered
	// (REPLAY_RETENTION); replay.Retention when zero.
	ReplayRetention time.Duration
}

// Deps are the parts the core drives.
type Deps struct {
	Executor      executor.Executor
	GitHub        Minter
	Subscriptions subscriptions.Source
	// Memory remembers dispatched builds past their Jobs (package replay),
	// so a repeat after the Job is gone creates nothing; nil remembers
	// nothing beyond the executor.
	Memory replay.Memory
	Logger *slog.Logger
	// Now is the clock for tokens; nil means time.Now.
	Now func() time.Time
}

// Service is the core.
type Service struct {
	cfg  Config
	exec executor.Executor
	gh   Minter
	subs subscriptions.Source
	mem  replay.Memory
	log  *slog.Logger
	now  func() time.Time
	// superseding keeps supersedes of one service and branch from
	// overlapping.
	superseding groups
	// followUps counts the pushes' background work still running.
	followUps sync.WaitGroup
}

// New returns the core. Nothing is contacted until a call needs it.
func New(cfg Config, d Deps) *Service {
	if cfg.CallbackTimeout <= 0 {
		cfg.CallbackTimeout = 4 * time.Second
	}
	if cfg.FollowUpTimeout <= 0 {
		cfg.FollowUpTimeout = 30 * time.Second
	}
	s := &Service{cfg: cfg, exec: d.Executor, gh: d.GitHub, subs: d.Subscriptions, mem: d.Memory, log: d.Logger, now: d.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

func (s *Service) logger(ctx context.Context) *slog.Logger { return logging.From(ctx, s.log) }

// Params are the values dispatch adds to every request.
func (s *Service) Params() buildreq.Params {
	return buildreq.Params{
		CallbackBaseURL:        s.cfg.CallbackURL,
		CallbackPlainHTTPHosts: s.cfg.CallbackPlainHTTPHosts,
		GitHubURL:              s.cfg.GitHubURL,
		RegistryUser:           s.cfg.RegistryUser,
		RegistryToken:          s.cfg.RegistryToken,
		Runner:                 s.cfg.Runner,
	}
}

// Kind says what a failure to start a build asks of whoever asked for it.
type Kind int

const (
	// Unavailable: something dispatch depends on failed; retrying is safe.
	Unavailable Kind = iota
	// Invalid: the request must change.
	Invalid
	// NoAccess: the installation cannot read the repository.
	NoAccess
	// TimedOut: the time the caller gave ran out.
	TimedOut
	// Conflict: the id names another build, dispatched with a different
	// request.
	Conflict
	// Known: the build was dispatched before and was canceled or its Job
	// is gone; nothing was created again (Problem.Known holds its last
	// known state).
	Known
)

// Problem is a failure to start a build, as a caller is told about it.
type Problem struct {
	Kind Kind
	// Message is safe to show: details that can name internal hosts stay
	// in the log.
	Message  string
	Fields   []string
	Problems []buildreq.Problem
	// Known is the remembered build, for Kind Known.
	Known *replay.Record
}

// Explain classifies an error from Start. It is the one place that decides
// what a failure means to a caller; the HTTP layer and the webhook's
// per-service answer both go by it.
func Explain(err error) Problem {
	var inv *buildreq.InvalidError
	var known *replay.KnownError
	switch {
	case errors.As(err, &inv):
		return Problem{Kind: Invalid, Message: inv.Error(), Fields: inv.Fields(), Problems: inv.Problems}
	case errors.As(err, &known):
		rec := known.Record
		return Problem{Kind: Known, Message: err.Error(), Known: &rec}
	case errors.Is(err, replay.ErrConflict):
		return Problem{Kind: Conflict, Message: err.Error(), Fields: []string{"buildJobId"}}
	case errors.Is(err, githubapp.ErrNoAccess):
		return Problem{Kind: NoAccess, Message: "the GitHub App installation cannot access this repository",
			Fields: []string{"installationId", "repoOwner", "repoName"}}
	case errors.Is(err, context.DeadlineExceeded):
		return Problem{Kind: TimedOut, Message: "timed out starting the build"}
	default:
		return Problem{Kind: Unavailable, Message: "could not start the build"}
	}
}

// Refused reports whether the problem is the request's and retrying the
// same request cannot help.
func (p Problem) Refused() bool { return p.Kind == Invalid || p.Kind == NoAccess || p.Kind == Conflict }

// repoTokens mints one installation token per repository and request:
// a push that several services track needs only one.
type repoTokens struct {
	gh Minter
	mu sync.Mutex
	m  map[string]githubapp.Token
}

func newRepoTokens(gh Minter) *repoTokens {
	return &repoTokens{gh: gh, m: map[string]githubapp.Token{}}
}

func (t *repoTokens) get(ctx context.Context, installationID int64, owner, repo string) (githubapp.Token, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := fmt.Sprintf("%d/%s/%s", installationID, owner, repo)
	if tok, ok := t.m[k]; ok {
		return tok, nil
	}
	tok, err := t.gh.RepoToken(ctx, installationID, owner, repo)
	if err != nil {
		return tok, err
	}
	t.m[k] = tok
	return tok, nil
}

// Start validates req, mints its credentials and submits it (or finds it
// submitted already). trigger says who asked: "api" or "push".
func (s *Service) Start(ctx context.Context, req buildreq.Request, trigger string) (executor.Handle, error) {
	return s.start(ctx, req, trigger, newRepoTokens(s.gh))
}

// start validates first, so that a bad request costs no GitHub call. The
// contract is assembled and checked once; the executor trusts it.
func (s *Service) start(ctx context.Context, req buildreq.Request, trigger string, tokens *repoTokens) (executor.Handle, error) {
	p := s.Params()
	env, err := req.Env(p)
	if err != nil {
		return executor.Handle{}, err
	}
	fresh, err := s.recall(ctx, req, env)
	if err != nil {
		return executor.Handle{}, err
	}
	tok, err := tokens.get(ctx, int64(req.InstallationID), req.RepoOwner, req.RepoName)
	if err != nil {
		return executor.Handle{}, fmt.Errorf("build %s: %w", req.BuildJobID, err)
	}
	env, err = req.WithCredentials(env, p.GitHubURL, tok.Value, token.Mint(s.cfg.CallbackSecret, req.BuildJobID, s.now()))
	if err != nil {
		return executor.Handle{}, fmt.Errorf("build %s: %w", req.BuildJobID, err)
	}
	h, err := s.exec.Submit(ctx, req.Build(env, trigger))
	if errors.Is(err, executor.ErrGone) {
		// Canceled (superseded, most often) while this request submitted
		// it: answered as a repeat of a canceled build is.
		var known *replay.KnownError
		if _, rerr := s.recall(ctx, req, env); errors.As(rerr, &known) {
			return h, rerr
		}
	}
	if err != nil {
		return h, fmt.Errorf("submit build %s: %w", req.BuildJobID, err)
	}
	s.remember(ctx, req.BuildJobID, fresh, h)
	s.logger(ctx).Info("build submitted", "build", req.BuildJobID, "job", h.Name, "namespace", h.Namespace,
		"created", h.Created, "trigger", trigger, "repo", req.RepoOwner+"/"+req.RepoName, "ref", req.CommitSHA,
		"service", req.ServiceID, "branch", req.Branch)
	return h, nil
}

// BuildState is a build's state as Status answers it.
type BuildState struct {
	State executor.State
	// Remembered is true when the build's Job is gone and State is the
	// last state dispatch recorded for it (package replay).
	Remembered bool
}

// Status is the build's state as the executor sees it, or, once its Job is
// gone (finished past its TTL, canceled, deleted), the last state
// dispatch remembers: a build it dispatched is never "not found" while
// its record lasts (REPLAY_RETENTION).
func (s *Service) Status(ctx context.Context, id string) (BuildState, error) {
	st, err := s.exec.Status(ctx, id)
	if err != nil || st != executor.StateNotFound || s.mem == nil {
		return BuildState{State: st}, err
	}
	rec, found, err := s.mem.Get(ctx, id)
	if err != nil {
		return BuildState{}, err
	}
	if !found || rec.State == replay.StateAccepted {
		// Accepted: claimed, never confirmed submitted.
		return BuildState{State: st}, nil
	}
	return BuildState{State: executor.State(rec.State), Remembered: true}, nil
}

// StateCanceled is what Cancel reports for a build it stopped.
const StateCanceled executor.State = "canceled"

// ErrFinished is returned by Cancel for a build that has already ended:
// its terminal status is reported, CANCELED would be ignored, and its Job
// goes with its TTL.
var ErrFinished = errors.New("build already finished")

// Canceled is the outcome of Cancel.
type Canceled struct {
	// State is the build's state before the cancel.
	State executor.State
	// CallbackErr is why the CANCELED report did not reach the platform;
	// nil when it did.
	CallbackErr error
}

// Cancel stops a build on request. callbackBase (optional) is where its
// CANCELED goes instead of CALLBACK_URL. It returns executor.ErrNotFound
// for an unknown build and ErrFinished for one that has ended.
func (s *Service) Cancel(ctx context.Context, id, callbackBase string) (Canceled, error) {
	st, err := s.exec.Status(ctx, id)
	if err != nil {
		return Canceled{}, err
	}
	out := Canceled{State: st}
	switch st {
	case executor.StateNotFound:
		return out, fmt.Errorf("cancel build %s: %w", id, executor.ErrNotFound)
	case executor.StateSucceeded, executor.StateFailed:
		return out, fmt.Errorf("cancel build %s: %w", id, ErrFinished)
	}
	out.CallbackErr, err = s.cancel(ctx, id, "canceled on request", callbackBase)
	if err != nil {
		return out, err
	}
	s.logger(ctx).Info("build canceled", "build", id, "callback_ok", out.CallbackErr == nil)
	return out, nil
}

// cancel reports CANCELED, then stops the build. The report goes first on
// purpose: deleting the Job sends the runner SIGTERM, and the runner then
// reports its own terminal status; service-cloud-api keeps the first
// terminal status it receives, so ours must already be there. A failed
// report does not stop the cancel (a build nobody wants must not keep
// running); it is returned for the caller to show.
//
// The build is remembered as canceled before its Job is deleted: a repeat
// of its request (a redelivery) arriving while the Job is going away is
// then answered from the record, instead of finding a Job that cannot be
// built on and asking to retry.
func (s *Service) cancel(ctx context.Context, id, reason, callbackBase string) (callbackErr, err error) {
	callbackErr = s.report(ctx, id, callback.Canceled, "", reason, callbackBase)
	if callbackErr != nil {
		s.logger(ctx).Warn("CANCELED callback failed", "build", id, "err", callbackErr)
	}
	s.rememberState(ctx, id, replay.StateCanceled)
	if err := s.exec.Cancel(ctx, id); err != nil {
		return callbackErr, err
	}
	return callbackErr, nil
}

// report posts a terminal status for a build dispatch decided about itself.
// It carries no logs: service-cloud-api replaces a build's stored log with
// any callback's logs, and the runner's tail is worth more than one line.
// The reason goes in errorMessage.
func (s *Service) report(ctx context.Context, id string, status callback.Status, class, reason, callbackBase string) error {
	return s.send(ctx, callbackBase, callback.Payload{
		BuildJobID:   id,
		Status:       status,
		ErrorMessage: reason,
		ErrorClass:   class,
	})
}

// send posts p with a token minted for its build, to callbackBase (a base
// URL or the full callback endpoint) or else the configured CALLBACK_URL.
func (s *Service) send(ctx context.Context, callbackBase string, p callback.Payload) error {
	if callbackBase == "" {
		callbackBase = s.cfg.CallbackURL
	}
	c := callback.New(buildreq.CallbackEndpoint(callbackBase), token.Mint(s.cfg.CallbackSecret, p.BuildJobID, s.now()))
	c.MaxElapsed = s.cfg.CallbackTimeout
	c.HTTP = &http.Client{Timeout: s.cfg.CallbackTimeout}
	c.Base = 100 * time.Millisecond
	c.Max = time.Second
	return c.Send(ctx, p)
}
