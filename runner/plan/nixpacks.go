package plan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/alternatefutures/af-builder/runner/detect"
	"github.com/alternatefutures/af-builder/runner/failure"
)

// Nixpacks writes a Dockerfile with the nixpacks CLI:
//
//	nixpacks build DIR --out DIR [--build-cmd CMD] [--start-cmd CMD] --cache-key KEY
//
// which leaves DIR/.nixpacks/Dockerfile, then builds it like any other.
type Nixpacks struct {
	// Bin is the nixpacks executable; "nixpacks" from PATH when empty.
	Bin string
}

func (n Nixpacks) bin() string {
	if n.Bin != "" {
		return n.Bin
	}
	return "nixpacks"
}

// portEnv is the one variable the runner gives Nixpacks: the port apps that
// read PORT listen on, which detection reports to the platform. Nixpacks
// bakes --env values into the image, so nothing else, and never a secret,
// is ever passed this way.
var portEnv = fmt.Sprintf("PORT=%d", detect.DefaultPort)

// Plan runs nixpacks.
func (n Nixpacks) Plan(ctx context.Context, src Source, log io.Writer) (Plan, error) {
	if _, err := exec.LookPath(n.bin()); err != nil {
		return Plan{}, failure.Wrap(failure.Infrastructure,
			"the repository has no Dockerfile and nixpacks is not installed in the runner image", err)
	}
	// A committed .nixpacks (a symlink, say) must not decide where nixpacks
	// writes or which Dockerfile is built.
	if err := os.RemoveAll(filepath.Join(src.Dir, ".nixpacks")); err != nil {
		return Plan{}, failure.Wrap(failure.Infrastructure, "cannot clear .nixpacks", err)
	}
	// The overrides go to both commands, so the plan describes what will run.
	var overrides []string
	if src.BuildCommand != "" {
		overrides = append(overrides, "--build-cmd", src.BuildCommand)
	}
	if src.StartCommand != "" {
		overrides = append(overrides, "--start-cmd", src.StartCommand)
	}
	detected := src.Detected
	planArgs := append([]string{"plan", src.Dir, "--format", "json", "--env", portEnv}, overrides...)
	if out, err := n.run(ctx, nil, planArgs...); err == nil {
		detected = detect.RefineWithNixpacksPlan(detected, out)
	} else {
		// Plan output only refines detection; the build below decides success.
		fmt.Fprintf(log, "nixpacks plan gave no result (%v); keeping the detected settings\n", err)
	}
	detected = detect.ApplyStartCommand(detected, src.StartCommand)

	args := []string{"build", src.Dir, "--out", src.Dir, "--env", portEnv}
	if src.CacheKey != "" {
		args = append(args, "--cache-key", src.CacheKey)
	}
	args = append(args, overrides...)
	fmt.Fprintf(log, "generating a Dockerfile with %s\n", strings.Join(append([]string{"nixpacks"}, args...), " "))
	if _, err := n.run(ctx, log, args...); err != nil {
		// Nixpacks exits non-zero when it cannot tell how to build the app.
		return Plan{}, failure.Wrap(failure.User,
			"nixpacks could not work out how to build this directory; add a Dockerfile or set a build and start command", err)
	}
	dfDir := filepath.Join(src.Dir, ".nixpacks")
	if fi, err := os.Stat(filepath.Join(dfDir, "Dockerfile")); err != nil || !fi.Mode().IsRegular() {
		return Plan{}, failure.Wrap(failure.Infrastructure, "nixpacks did not write .nixpacks/Dockerfile", err)
	}
	return Plan{
		Kind:           "nixpacks",
		ContextDir:     src.Dir,
		DockerfileDir:  dfDir,
		DockerfileName: "Dockerfile",
		Detected:       detected,
	}, nil
}

// run executes nixpacks with a minimal environment: the runner's own holds
// the callback, registry and git tokens, and nixpacks has no use for them.
// With log set, output streams there; otherwise stdout is returned.
func (n Nixpacks) run(ctx context.Context, log io.Writer, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, n.bin(), args...)
	// Its own process group, so a deadline stops whatever nixpacks started too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.Env = nixpacksEnv()
	// Once ctx ends and nixpacks is killed, a child it left behind holding
	// stdout must not keep Run waiting past the deadline.
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	if log != nil {
		cmd.Stdout, cmd.Stderr = log, log
	} else {
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
	}
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 500 {
			msg = msg[len(msg)-500:]
		}
		if msg != "" {
			return nil, fmt.Errorf("nixpacks %s exited with %d: %s", args[0], ee.ExitCode(), msg)
		}
		return nil, fmt.Errorf("nixpacks %s exited with %d", args[0], ee.ExitCode())
	}
	return stdout.Bytes(), err
}

func nixpacksEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "PATH" || k == "HOME" || k == "TMPDIR" || strings.HasPrefix(k, "NIXPACKS_") {
			env = append(env, kv)
		}
	}
	return env
}
