package pipeline

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/alternatefutures/af-builder/internal/testinfra/gitserver"
	"github.com/alternatefutures/af-builder/runner/buildlog"
	"github.com/alternatefutures/af-builder/runner/failure"
	"github.com/alternatefutures/af-builder/shared/contract"
	"github.com/alternatefutures/af-builder/shared/redact"
)

func TestCacheKey(t *testing.T) {
	for _, tc := range []struct {
		image, root, want string
	}{
		{"ghcr.io/af/u1--octo-app:0123456789ab", ".", "af-u1--octo-app"},
		{"ghcr.io/af/u1--octo-app:ba9876543210", ".", "af-u1--octo-app"}, // the tag changes per commit; the key must not
		{"ghcr.io/af/u1--octo-app:0123456789ab", "apps/web", "af-u1--octo-app-apps-web"},
		{"ghcr.io/af/u1--octo-app:0123456789ab", "services/api/v2", "af-u1--octo-app-services-api-v2"},
		{"127.0.0.1:5000/af/u1--octo-app:0123456789ab", ".", "af-u1--octo-app"},                                                     // the registry host and port are not part of it
		{"ghcr.io/af/u1--octo-app@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", ".", "af-u1--octo-app"}, // nor a digest
		{"app:1", ".", "library-app"},
	} {
		if got := cacheKey(tc.image, tc.root); got != tc.want {
			t.Errorf("cacheKey(%q, %q) = %q, want %q", tc.image, tc.root, got, tc.want)
		}
	}
	// Two services of one monorepo never share a cache.
	if cacheKey("ghcr.io/af/u1--octo-mono:abc", "apps/web") == cacheKey("ghcr.io/af/u1--octo-mono:abc", "apps/api") {
		t.Error("two root directories share a cache key")
	}
}

func TestTimingsMs(t *testing.T) {
	o := Outcome{Timings: map[string]time.Duration{
		"engine": 1500 * time.Microsecond,
		"clone":  2*time.Second + 345*time.Millisecond,
		"build":  3*time.Minute + 999*time.Microsecond,
		"push":   0,
	}}
	got := o.TimingsMs()
	want := map[string]int64{"engine": 1, "clone": 2345, "build": 180000, "push": 0}
	if len(got) != len(want) {
		t.Fatalf("TimingsMs = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("TimingsMs[%s] = %d, want %d", k, got[k], v)
		}
	}
	if n := len(Outcome{}.TimingsMs()); n != 0 {
		t.Errorf("no timings gave %d entries", n)
	}
}

func newLog() (*buildlog.Log, *bytes.Buffer) {
	var out bytes.Buffer
	return buildlog.New(&out, redact.New()), &out
}

func wantFailure(t *testing.T, err error, phase failure.Phase, class failure.Class, text string) {
	t.Helper()
	var fe *failure.Error
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v (%T), want a *failure.Error", err, err)
	}
	if fe.Phase != phase || fe.Class != class || !strings.Contains(fe.Message, text) {
		t.Errorf("failure = %s/%s %q, want %s/%s containing %q", fe.Phase, fe.Class, fe.Message, phase, class, text)
	}
}

func TestRunStopsBeforeAnyPhaseWhenAlreadyCancelled(t *testing.T) {
	log, out := newLog()
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("SIGTERM"))
	o, err := Run(ctx, Config{Env: contract.Env{DockerHost: "tcp://127.0.0.1:1"}, WorkDir: t.TempDir(), Log: log, Timeouts: DefaultTimeouts})
	wantFailure(t, err, failure.Engine, failure.Transient, "stopped before it started")
	if o.Phase != failure.Engine || len(o.Timings) != 0 {
		t.Errorf("outcome = %+v, want phase engine and no timings", o)
	}
	if o.AfterReport != nil {
		t.Error("a failed run leaves work for after its report")
	}
	if out.Len() != 0 {
		t.Errorf("a phase that never started logged:\n%s", out.String())
	}
}

func TestRunReportsAnEngineThatNeverAnswersAsAnInfrastructureTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: every ping is refused

	log, out := newLog()
	timeouts := DefaultTimeouts
	timeouts.Engine = 300 * time.Millisecond
	o, err := Run(context.Background(), Config{Env: contract.Env{DockerHost: "tcp://" + addr}, WorkDir: t.TempDir(), Log: log, Timeouts: timeouts})
	wantFailure(t, err, failure.Engine, failure.Infrastructure, "engine phase exceeded its 300ms limit")
	if o.Phase != failure.Engine {
		t.Errorf("phase = %s, want engine", o.Phase)
	}
	if d := o.Timings["engine"]; d < timeouts.Engine || len(o.Timings) != 1 {
		t.Errorf("timings = %v, want only engine, at least %s", o.Timings, timeouts.Engine)
	}
	if !strings.Contains(out.String(), "engine: failed after ") || strings.Contains(out.String(), "clone:") {
		t.Errorf("log does not end at the engine's failure:\n%s", out.String())
	}
}

func TestRunStopsAtTheFirstFailingPhase(t *testing.T) {
	// An engine that answers pings, and a repository the token cannot read.
	engine := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		w.Write([]byte("OK"))
	}))
	defer engine.Close()
	git, err := gitserver.Start(context.Background(), gitserver.Options{Token: "ghs_RightToken0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	defer git.Stop()
	repo, err := git.CreateRepo("octo/app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Commit("main", map[string]gitserver.File{"index.html": gitserver.Text("hi\n")}, "one"); err != nil {
		t.Fatal(err)
	}

	log, out := newLog()
	o, err := Run(context.Background(), Config{
		Env: contract.Env{
			DockerHost:    "tcp://" + strings.TrimPrefix(engine.URL, "http://"),
			RepoCloneURL:  repo.CloneURL("ghs_WrongToken0123456789abcdef"),
			RepoRef:       "main",
			RootDirectory: ".",
			ImageTag:      "ghcr.io/af/u1--octo-app:0123456789ab",
		},
		WorkDir:  t.TempDir(),
		Log:      log,
		Timeouts: DefaultTimeouts,
	})
	// The clone's own classification survives the phase machinery.
	wantFailure(t, err, failure.Clone, failure.User, "access to")
	if o.Phase != failure.Clone || o.CommitSHA != "" {
		t.Errorf("outcome = %+v, want phase clone and no commit", o)
	}
	if _, ok := o.Timings["engine"]; !ok || len(o.Timings) != 2 {
		t.Errorf("timings = %v, want engine and clone", o.Timings)
	}
	text := out.String()
	for _, want := range []string{"engine: Docker engine ready (API 1.41)", "engine: done in ", "clone: fetching " + repo.SourceURL() + " at main", "clone: failed after "} {
		if !strings.Contains(text, want) {
			t.Errorf("log lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "ghs_WrongToken") || strings.Contains(text, "detect:") {
		t.Errorf("log leaks the token or goes past the clone:\n%s", text)
	}
}

// A failure's message is what the user reads; its cause is what tells an
// operator what broke. A runner pod is gone soon after the build, so the
// cause must reach the build log, which the platform keeps.
func TestRunLogsTheCauseBehindAFailure(t *testing.T) {
	engine := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		w.Write([]byte("OK"))
	}))
	defer engine.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	git := ln.Addr().String()
	ln.Close() // no git server: the fetch is refused

	log, out := newLog()
	_, err = Run(context.Background(), Config{
		Env: contract.Env{
			DockerHost:    "tcp://" + strings.TrimPrefix(engine.URL, "http://"),
			RepoCloneURL:  "http://x-access-token:ghs_Token0123456789abcdef@" + git + "/octo/app.git",
			RepoRef:       "main",
			RootDirectory: ".",
			ImageTag:      "ghcr.io/af/u1--octo-app:0123456789ab",
		},
		WorkDir:  t.TempDir(),
		Log:      log,
		Timeouts: DefaultTimeouts,
	})
	wantFailure(t, err, failure.Clone, failure.Transient, "fetching http://"+git+"/octo/app.git failed")
	if text := out.String(); !strings.Contains(text, "connection refused") {
		t.Errorf("the build log does not say why the fetch failed:\n%s", text)
	}
}
