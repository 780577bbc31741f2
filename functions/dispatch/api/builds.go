package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/alternatefutures/af-builder/functions/dispatch/apiauth"
	"github.com/alternatefutures/af-builder/functions/dispatch/buildreq"
	"github.com/alternatefutures/af-builder/functions/dispatch/builds"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor"
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
	// SpawnerResult is the same answer under service-cloud-api's names.
	SpawnerResult
	// State and Replayed are set when the build was dispatched before and
	// its Job is gone: nothing was created, State is its last known state.
	State    string `json:"state,omitempty"`
	Replayed bool   `json:"replayed,omitempty"`
}

// StatusResponse answers GET and DELETE /v1/builds/{id}.
type StatusResponse struct {
	BuildJobID string         `json:"buildJobId"`
	State      executor.State `json:"state"`
	// Callback says whether the CANCELED report reached the platform
	// (DELETE only): "sent" or "failed".
	Callback string `json:"callback,omitempty"`
	// Replayed is true when the build's Job is gone and State is the last
	// state dispatch recorded for it (GET only).
	Replayed bool `json:"replayed,omitempty"`
}

// StateCanceled is what DELETE reports for a build it stopped.
const StateCanceled = builds.StateCanceled

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
		code, eb := answer(err)
		writeJSON(w, code, eb)
		return
	}
	h, err := s.core.Start(r.Context(), req, "api")
	if err != nil {
		if p := builds.Explain(err); p.Kind == builds.Known {
			// A repeat of a build whose Job is gone: 202 as for any repeat,
			// nothing created, with the build's last known state.
			rec := p.Known
			line := fmt.Sprintf("[dispatch] build %s was already dispatched as Job %s/%s (last known state: %s); nothing was created",
				rec.BuildJobID, rec.Namespace, rec.JobName, rec.State)
			resp := s.buildResponse(req, executor.Handle{Name: rec.JobName, Namespace: rec.Namespace}, line)
			resp.State, resp.Replayed = rec.State, true
			writeJSON(w, http.StatusAccepted, resp)
			return
		}
		code, eb := answer(err)
		if code >= 500 {
			s.logger(r.Context()).Error("build not started", "build", req.BuildJobID, "err", err)
		}
		writeJSON(w, code, eb)
		return
	}
	writeJSON(w, http.StatusAccepted, s.buildResponse(req, h, queuedLine(req, h)))
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
	st, err := s.core.Status(r.Context(), id)
	if err != nil {
		s.logger(r.Context()).Error("status failed", "build", id, "err", err)
		writeJSON(w, http.StatusBadGateway, errorBody{Error: "could not read the build's status"})
		return
	}
	code := http.StatusOK
	if st.State == executor.StateNotFound {
		code = http.StatusNotFound
	}
	writeJSON(w, code, StatusResponse{BuildJobID: id, State: st.State, Replayed: st.Remembered})
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
		plain, _ := validate.ParsePlainHTTPHosts(s.cfg.CallbackPlainHTTPHosts) // checked at start-up
		if err := validate.CallbackURLFor(base, plain); err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: "callbackBaseUrl " + err.Error(), Fields: []string{"callbackBaseUrl"}})
			return
		}
	}
	c, err := s.core.Cancel(r.Context(), id, base)
	switch {
	case errors.Is(err, executor.ErrNotFound):
		writeJSON(w, http.StatusNotFound, StatusResponse{BuildJobID: id, State: executor.StateNotFound})
		return
	case errors.Is(err, builds.ErrFinished):
		writeJSON(w, http.StatusConflict, StatusResponse{BuildJobID: id, State: c.State})
		return
	case err != nil:
		s.logger(r.Context()).Error("cancel failed", "build", id, "err", err)
		writeJSON(w, http.StatusBadGateway, errorBody{Error: "could not cancel the build"})
		return
	}
	resp := StatusResponse{BuildJobID: id, State: StateCanceled, Callback: "sent"}
	if c.CallbackErr != nil {
		resp.Callback = "failed"
	}
	writeJSON(w, http.StatusOK, resp)
}
