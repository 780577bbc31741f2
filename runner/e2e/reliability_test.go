package e2e

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	gs "github.com/alternatefutures/af-builder/internal/testinfra/gitserver"
)

// everything a runner left where a person or the platform can read it.
func printed(res result) string {
	var b strings.Builder
	b.WriteString(res.Stdout)
	b.WriteString(res.Stderr)
	for _, d := range res.Deliveries {
		b.Write(d.Body)
	}
	return b.String()
}

// A build that prints one line that never ends: the runner must pass pieces
// of it on (it cannot hold it whole), and BuildKit hands it over in chunks
// wherever the process paused. Here the process pauses in the middle of the
// token just as the line passes 64 KiB, then prints the token over and over.
// No piece may show a part of the token long enough to matter.
func TestASecretIsMaskedWhereverTheOutputIsCut(t *testing.T) {
	// The Dockerfile holds the token base64-encoded: its RUN line is printed
	// as the step's name, and must not hold the token's halves in clear.
	b64 := base64.StdEncoding.EncodeToString([]byte(gitToken))
	half := len(gitToken) / 2
	token := "echo " + b64 + " | base64 -d"
	run := "RUN echo " + randHex(8) + // keeps BuildKit's cache from skipping the step
		"; printf '%65520s' '' | tr ' ' '#'" +
		"; " + token + " | cut -c1-" + strconv.Itoa(half) + " | tr -d '\\n'; sleep 1" +
		"; " + token + " | cut -c" + strconv.Itoa(half+1) + "- | tr -d '\\n'" +
		"; yes \"$(" + token + ")\" | tr -d '\\n' | head -c " + strconv.Itoa(3000*len(gitToken)) +
		// The arithmetic makes the marker appear only when the step runs.
		"; echo; echo long-line-$((1+1))-done\n"
	repo, shas := newRepo(t, map[string]gs.File{"Dockerfile": gs.Text("FROM " + baseImage + "\n" + run)})
	res := newBuild(t, repo, shas[0]).run(t)

	if res.ExitCode != 0 || res.Terminal["status"] != "SUCCEEDED" {
		t.Fatalf("exit %d, terminal %v", res.ExitCode, res.Terminal["status"])
	}
	if !strings.Contains(res.Stdout, "long-line-2-done") {
		t.Fatalf("the build's output did not reach stdout")
	}
	if strings.Count(res.Stdout, "[REDACTED]") < 3000 {
		t.Fatalf("the token was printed %d times, masked; want at least 3000", strings.Count(res.Stdout, "[REDACTED]"))
	}
	out := printed(res)
	// Six characters is a third of a short token; runs of hex digits are
	// left out, as image digests are full of them.
	for i := 0; i+6 <= len(gitToken); i++ {
		piece := gitToken[i : i+6]
		if strings.Trim(piece, "0123456789abcdef") == "" {
			continue
		}
		if strings.Contains(out, piece) {
			t.Fatalf("%q, a piece of the git token, was printed (a secret split by a cut leaks)", piece)
		}
	}
}

// Tools print credentials encoded: a Docker config.json holds
// base64(user:password), a Basic header the same, a JSON blob a token's
// base64 in either alphabet, inside a longer stream at any offset.
func TestEncodedFormsOfEverySecretAreMasked(t *testing.T) {
	forms := map[string]string{
		"registry Basic auth":              base64.StdEncoding.EncodeToString([]byte("af-push:" + registryPass)),
		"git Basic auth":                   base64.StdEncoding.EncodeToString([]byte("x-access-token:" + gitToken)),
		"bare registry password":           base64.StdEncoding.EncodeToString([]byte(registryPass)),
		"bare git token, URL alphabet":     base64.RawURLEncoding.EncodeToString([]byte(gitToken)),
		"registry password in a stream +1": base64.StdEncoding.EncodeToString([]byte("{\"p\":\"" + registryPass + "\"}")),
		"git token in a stream +2":         base64.StdEncoding.EncodeToString([]byte("{\"tk\":\"" + gitToken + "\"}")),
	}
	var run strings.Builder
	for _, f := range forms {
		run.WriteString("RUN echo 'auth: " + f + "'\n")
	}
	repo, shas := newRepo(t, map[string]gs.File{
		"Dockerfile": gs.Text("FROM " + baseImage + "\nRUN echo " + randHex(8) + "\n" + run.String() + "RUN echo printed-$((1+1))-forms\n"),
	})
	res := newBuild(t, repo, shas[0]).run(t)

	if res.ExitCode != 0 || !strings.Contains(res.Stdout, "printed-2-forms") {
		t.Fatalf("exit %d; the build did not print its output", res.ExitCode)
	}
	out := printed(res)
	for name, f := range forms {
		// The characters that encode the secret alone: a few at each end
		// are shared with what surrounds it.
		core := f[len(f)/2-8 : len(f)/2+8]
		if strings.Contains(out, core) {
			t.Errorf("the %s was printed: %q", name, core)
		}
	}
}

// The terminal status is retried for up to two minutes, but a SIGTERM that
// arrives meanwhile leaves the runner only its grace period: it must give up
// and exit on its own before Kubernetes kills the pod.
func TestSIGTERMWhileTheTerminalStatusIsRetriedEndsTheRunnerInTime(t *testing.T) {
	for _, c := range []struct {
		name     string
		prepare  func(b *build)
		terminal string
		exit     int
	}{
		{"after a failed build", func(b *build) {}, "FAILED", 3},
		{"after a configuration error", func(b *build) { b.Env["IMAGE_TAG"] = "Not A Valid Tag" }, "FAILED", 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			// Each waits out the 20 s shutdown budget; together, not in turn.
			t.Parallel()
			repo, _ := newRepo(t, appFiles("v1"))
			b := newBuild(t, repo, strings.Repeat("cd", 20)) // an unknown commit: clone fails at once
			c.prepare(b)
			codes := make([]int, 500)
			for i := range codes {
				codes[i] = http.StatusServiceUnavailable
			}
			env.sink.Script(b.ID, codes...)
			r := b.start(t)

			deadline := time.Now().Add(2 * time.Minute)
			for !terminalTried(b.ID, c.terminal) {
				if time.Now().After(deadline) {
					r.cmd.Process.Kill()
					t.Fatalf("the terminal status was never sent; stdout:\n%s", r.stdout.String())
				}
				time.Sleep(100 * time.Millisecond)
			}
			time.Sleep(time.Second) // into the retries
			signalled := time.Now()
			r.cmd.Process.Signal(syscall.SIGTERM)
			res := r.wait(t)
			took := time.Since(signalled)

			// 20s for the terminal status after SIGTERM; the pod's grace
			// period is at least 30s.
			if took > 25*time.Second {
				t.Errorf("runner exited %s after SIGTERM; the pod would have been killed", took.Round(time.Second))
			}
			if res.ExitCode != c.exit {
				t.Errorf("exit code %d, want %d", res.ExitCode, c.exit)
			}
		})
	}
}

// terminalTried reports whether the sink has seen a delivery of status for id.
func terminalTried(id, status string) bool {
	for _, d := range env.sink.Deliveries(id) {
		if d.Status == status {
			return true
		}
	}
	return false
}
