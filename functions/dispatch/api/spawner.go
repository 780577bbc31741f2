package api

import (
	"github.com/alternatefutures/af-builder/functions/dispatch/buildreq"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor"
)

// SpawnerResult is what service-cloud-api's in-process build spawner
// returns, so a platform that swaps it for a call to dispatch needs no
// mapping: the Job's name, whether it was only rendered, which executor
// runs it ("kubernetes" or "local"), and the first line of its log.
type SpawnerResult struct {
	K8sJobName string `json:"k8sJobName"`
	DryRun     bool   `json:"dryRun"`
	Executor   string `json:"executor"`
	InitialLog string `json:"initialLog"`
}

func (s *Server) buildResponse(req buildreq.Request, h executor.Handle, log string) BuildResponse {
	ex := s.cfg.Executor
	if ex == "" {
		ex = "kubernetes"
	}
	return BuildResponse{
		BuildJobID: req.BuildJobID,
		JobName:    h.Name,
		Namespace:  h.Namespace,
		Log:        log,
		SpawnerResult: SpawnerResult{
			K8sJobName: h.Name,
			DryRun:     s.cfg.DryRun,
			Executor:   ex,
			InitialLog: log,
		},
	}
}
