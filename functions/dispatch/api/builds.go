package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/alternatefutures/af-builder/functions/dispatch/apiauth"
	"github.com/alternatefutures/af-builder/functions/dispatch/buildreq"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor"
	"github.com/alternatefutures/af-builder/functions/dispatch/githubapp"
	"github.com/alternatefutures/af-builder/shared/callback"
	"github.com/alternatefutures/af-builder/shared/token"
	"github.com/alternatefutures/af-builder/shared/validate"
)

// BuildResponse answers POST /v1/builds, the same way for a new build and
// for a repeated request.
type BuildResponse struct {
	BuildJobID string `json:"buildJobId"`
	JobName    string `json:"jobName"`
	Namespace  string `json:"namespace"`
	// Log is a first line for the build log the platform shows.
	Log string `json:"log"`
}

// StatusResponse answers GET and DELETE /v1/builds/{id}.
type StatusResponse struct {
	BuildJobID string         `json:"buildJobId"`
	State      executor.State `json:"state"`
	// Callback says whether the CANCELED report reached the platform
	// (DELETE only): "sent" or "failed".
	Callback string `json:"callback,omitempty"`
}

// StateCanceled is what DELETE reports for a build it stopped.
const StateCanceled executor.State = "canceled"

func (s *Server) params() buildreq.Params {
	return buildreq.Params{
		CallbackBaseURL:   s.cfg.CallbackURL,
		GitHubURL:         s.cfg.GitHubURL,
		RegistryUser:      s.cfg.RegistryUser,
		RegistryToken:     s.cfg.RegistryToken,
		BuildTimeout:      s.cfg.BuildTimeout,
		LogStreamInterval: s.cfg.LogStreamInterval,
		BuildNetwork:      s.cfg.BuildNetwork,
		Planner:           s.cfg.Planner,
	}
}

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

// start validates req, mints its credentials and submits it. Validation
// comes first so that a bad request costs no GitHub call.
func (s *Server) start(ctx context.Context, req buildreq.Request, trigger string, tokens *repoTokens) (executor.Handle, error) {
	p := s.params()
	if err := req.Validate(p); err != nil {
		return executor.Handle{}, err
	}
	tok, err := tokens.get(ctx, int64(req.InstallationID), req.RepoOwner, req.RepoName)
	if err != nil {
		return executor.Handle{}, fmt.Errorf("build %s: %w", req.BuildJobID, err)
	}
	p.CloneToken = tok.Value
	p.CallbackToken = token.Mint(s.cfg.CallbackSecret, req.BuildJobID, s.now())
	env, err := req.Env(p)
	if err != nil {
		return executor.Handle{}, fmt.Errorf("build %s: %w", req.BuildJobID, err)
	}
	h, err := s.exec.Submit(ctx, req.Build(env, trigger))
	if err != nil {
		return h, fmt.Errorf("submit build %s: %w", req.BuildJobID, err)
	}
	s.logger(ctx).Info("build submitted", "build", req.BuildJobID, "job", h.Name, "namespace", h.Namespace,
		"created", h.Created, "trigger", trigger, "repo", req.RepoOwner+"/"+req.RepoName, "ref", req.CommitSHA,
		"service", req.ServiceID, "branch", req.Branch)
	return h, nil
}

// supersede keeps only the newest unfinished build of a service and branch.
// The executor lists them oldest first by push time, so a push delivered
// late (or redelivered) lands in its real place: the builds before the new
// one are canceled; if a newer one is already building, the new one is.
func (s *Server) supersede(ctx context.Context, newID, serviceID, branch, callbackBase string) {
	log := s.logger(ctx)
	ids, err := s.exec.Active(ctx, serviceID, branch)
	if err != nil {
		log.Warn("supersede: cannot list active builds", "service", serviceID, "branch", branch, "err", err)
		return
	}
	at := slices.Index(ids, newID)
	if at < 0 {
		// The new build is not among the active ones (already finished?);
		// its position is unknown, so nothing is known to be older.
		log.Warn("supersede: new build not among active builds; nothing canceled", "build", newID, "service", serviceID)
		return
	}
	newest := ids[len(ids)-1]
	stale := ids[:at]
	if newest != newID {
		// An older push arrived after a newer one: it is the stale one.
		stale = []string{newID}
	}
	for _, id := range stale {
		reason := "superseded by build " + newest + " (a newer push to " + branch + ")"
		if _, err := s.cancel(ctx, id, reason, callbackBase); err != nil && !errors.Is(err, executor.ErrNotFound) {
			log.Warn("supersede: cancel failed", "build", id, "by", newest, "err", err)
			continue
		}
		log.Info("build superseded", "build", id, "by", newest, "service", serviceID, "branch", branch)
	}
}

// cancel reports CANCELED, then stops the build. The report goes first on
// purpose: deleting the Job sends the runner SIGTERM, and the runner then
// reports its own terminal status; service-cloud-api keeps the first
// terminal status it receives, so ours must already be there. A failed
// report does not stop the cancel (a build nobody wants must not keep
// running); it is returned for the caller to show.
func (s *Server) cancel(ctx context.Context, id, reason, callbackBase string) (callbackErr, err error) {
	callbackErr = s.reportCanceled(ctx, id, reason, callbackBase)
	if callbackErr != nil {
		s.logger(ctx).Warn("CANCELED callback failed", "build", id, "err", callbackErr)
	}
	if err := s.exec.Cancel(ctx, id); err != nil {
		return callbackErr, err
	}
	return callbackErr, nil
}

func (s *Server) reportCanceled(ctx context.Context, id, reason, callbackBase string) error {
	return s.report(ctx, id, callback.Canceled, reason, callbackBase)
}

// report posts a terminal status for a build dispatch decided about itself.
func (s *Server) report(ctx context.Context, id string, status callback.Status, reason, callbackBase string) error {
	return s.send(ctx, callbackBase, callback.Payload{
		BuildJobID:   id,
		Status:       status,
		Logs:         "[dispatch] " + reason + "\n",
		ErrorMessage: reason,
	})
}

// send posts p with a token minted for its build, to callbackBase (a base
// URL or the full callback endpoint) or else the configured CALLBACK_URL.
func (s *Server) send(ctx context.Context, callbackBase string, p callback.Payload) error {
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

// readAuthenticated reads a /v1 body under the size cap and checks the
// caller. It writes the error answer itself and returns false then.
func (s *Server) readAuthenticated(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxAPIBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{Error: fmt.Sprintf("body exceeds %d bytes", s.cfg.MaxAPIBytes)})
			return nil, false
		}
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "cannot read body"})
		return nil, false
	}
	if err := apiauth.Verify(r, s.cfg.APISecret, body, s.now()); err != nil {
		s.logger(r.Context()).Warn("unauthenticated API call", "reason", err.Error())
		w.Header().Set("WWW-Authenticate", `Bearer realm="af-dispatch"`)
		writeJSON(w, http.StatusUnauthorized, errorBody{Error: "unauthorized: " + err.Error()})
		return nil, false
	}
	return body, true
}

func (s *Server) createBuild(w http.ResponseWriter, r *http.Request) {
	body, ok := s.readAuthenticated(w, r)
	if !ok {
		return
	}
	req, err := buildreq.Decode(body)
	if err != nil {
		code, eb := failure(err)
		writeJSON(w, code, eb)
		return
	}
	h, err := s.start(r.Context(), req, "api", newRepoTokens(s.gh))
	if err != nil {
		code, eb := failure(err)
		if code >= 500 {
			s.logger(r.Context()).Error("build not started", "build", req.BuildJobID, "err", err)
		}
		writeJSON(w, code, eb)
		return
	}
	writeJSON(w, http.StatusAccepted, BuildResponse{
		BuildJobID: req.BuildJobID,
		JobName:    h.Name,
		Namespace:  h.Namespace,
		Log:        queuedLine(req, h),
	})
}

func queuedLine(req buildreq.Request, h executor.Handle) string {
	ref := req.CommitSHA
	if validate.IsCommitSHA(ref) {
		ref = ref[:12]
	}
	return fmt.Sprintf("[dispatch] build %s queued as Job %s/%s: %s/%s@%s -> %s",
		req.BuildJobID, h.Namespace, h.Name, req.RepoOwner, req.RepoName, ref, req.ImageTag)
}

// buildID reads and checks the {id} path value, answering 400 itself.
func buildID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if err := validate.BuildJobID(id); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "build id " + err.Error(), Fields: []string{"id"}})
		return "", false
	}
	return id, true
}

func (s *Server) getBuild(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.readAuthenticated(w, r); !ok {
		return
	}
	id, ok := buildID(w, r)
	if !ok {
		return
	}
	st, err := s.exec.Status(r.Context(), id)
	if err != nil {
		s.logger(r.Context()).Error("status failed", "build", id, "err", err)
		writeJSON(w, http.StatusBadGateway, errorBody{Error: "could not read the build's status"})
		return
	}
	code := http.StatusOK
	if st == executor.StateNotFound {
		code = http.StatusNotFound
	}
	writeJSON(w, code, StatusResponse{BuildJobID: id, State: st})
}

// deleteBuild cancels a build. callbackBaseUrl may be given as a query
// parameter, as for the request that started the build.
func (s *Server) deleteBuild(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.readAuthenticated(w, r); !ok {
		return
	}
	id, ok := buildID(w, r)
	if !ok {
		return
	}
	base := r.URL.Query().Get("callbackBaseUrl")
	if base != "" {
		if err := validate.CallbackURL(base); err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: "callbackBaseUrl " + err.Error(), Fields: []string{"callbackBaseUrl"}})
			return
		}
	}
	log := s.logger(r.Context())
	st, err := s.exec.Status(r.Context(), id)
	if err != nil {
		log.Error("status failed", "build", id, "err", err)
		writeJSON(w, http.StatusBadGateway, errorBody{Error: "could not read the build's status"})
		return
	}
	switch st {
	case executor.StateNotFound:
		writeJSON(w, http.StatusNotFound, StatusResponse{BuildJobID: id, State: st})
		return
	case executor.StateSucceeded, executor.StateFailed:
		// Its terminal status is already reported; CANCELED would be
		// ignored and the Job goes with its TTL.
		writeJSON(w, http.StatusConflict, StatusResponse{BuildJobID: id, State: st})
		return
	}
	cbErr, err := s.cancel(r.Context(), id, "canceled on request", base)
	switch {
	case errors.Is(err, executor.ErrNotFound):
		writeJSON(w, http.StatusNotFound, StatusResponse{BuildJobID: id, State: executor.StateNotFound})
		return
	case err != nil:
		log.Error("cancel failed", "build", id, "err", err)
		writeJSON(w, http.StatusBadGateway, errorBody{Error: "could not cancel the build"})
		return
	}
	resp := StatusResponse{BuildJobID: id, State: StateCanceled, Callback: "sent"}
	if cbErr != nil {
		resp.Callback = "failed"
	}
	log.Info("build canceled", "build", id, "callback", resp.Callback)
	writeJSON(w, http.StatusOK, resp)
}
