package kubernetes

import (
	"testing"

	"github.com/alternatefutures/af-builder/functions/dispatch/executor"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor/executortest"
)

// The API server has no kubelet here, so submitted Jobs stay pending until
// cancelled: what the shared suite needs.
func TestKubernetesExecutorBehavesLikeEveryExecutor(t *testing.T) {
	executortest.Run(t, func(t *testing.T) executortest.Harness {
		ex, _, _ := newTestExecutor(t)
		return executortest.Harness{
			Executor: ex,
			NewBuild: func(t *testing.T, id, serviceID, branch string) executor.Build {
				b := sampleBuild()
				b.Env.BuildJobID = id
				b.ServiceID = serviceID
				b.Branch = branch
				return b
			},
		}
	})
}
