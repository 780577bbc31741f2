package builds_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/alternatefutures/af-builder/functions/dispatch/buildreq"
	"github.com/alternatefutures/af-builder/functions/dispatch/builds"
	"github.com/alternatefutures/af-builder/functions/dispatch/dispatchtest"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes/kubetest"
	"github.com/alternatefutures/af-builder/internal/testinfra/callbacksink"
	"github.com/alternatefutures/af-builder/shared/contract"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// core is dispatch's core over exec, reporting to the world's sink.
func core(t testing.TB, w *dispatchtest.World, exec executor.Executor, supersede bool) *builds.Service {
	return builds.New(builds.Config{
		CallbackSecret:  []byte(dispatchtest.CallbackSecret),
		CallbackURL:     w.CallbackBase(),
		GitHubURL:       "https://github.com",
		Runner:          contract.RunnerDefaults{BuildTimeout: 30 * time.Minute, LogStreamInterval: 5 * time.Second},
		Supersede:       supersede,
		CallbackTimeout: 3 * time.Second,
	}, builds.Deps{Executor: exec, GitHub: w.Minter(t), Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
}

// request is a build of the example repository.
func request(id string) buildreq.Request {
	return buildreq.Request{
		BuildJobID:     id,
		InstallationID: dispatchtest.InstallationID,
		RepoOwner:      dispatchtest.Owner,
		RepoName:       dispatchtest.Repo,
		CommitSHA:      dispatchtest.CommitA,
		ImageTag:       "ghcr.io/acme/web:" + dispatchtest.CommitA[:12],
	}
}

// pushRequest is a build of service web on main, pushed at pushed.
func pushRequest(id string, pushed time.Time) buildreq.Request {
	r := request(id)
	r.ServiceID, r.Branch, r.PushedAt = "web", "main", pushed
	return r
}

// noLogs fails when a delivery carries "logs": service-cloud-api would
// replace the build's stored log with it.
func noLogs(t *testing.T, d callbacksink.Delivery) {
	t.Helper()
	if _, ok := d.Payload["logs"]; ok {
		t.Errorf("%s for %s carries logs %q: it would overwrite the build's log", d.Status, d.BuildJobID, d.Payload["logs"])
	}
}
