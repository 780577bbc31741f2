// Package e2e runs the real runner binary against a real Docker engine
// (Debian's dockerd), a real registry with htpasswd auth (distribution), a
// real git smart-HTTP server with token auth (git http-backend) and a
// callback receiver that verifies tokens like service-cloud-api.
package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/alternatefutures/af-builder/internal/testinfra/callbacksink"
	"github.com/alternatefutures/af-builder/internal/testinfra/dockerd"
	"github.com/alternatefutures/af-builder/internal/testinfra/gitserver"
	"github.com/alternatefutures/af-builder/internal/testinfra/registry"
)

// The secrets of the whole suite. Every captured log line and callback body
// is scanned for each of them (see secrets_test.go).
const (
	gitToken       = "ghs_e2eGitInstallationToken0123456789ab"
	registryPass   = "reg-e2e-Pa55word-9f8e7d6c"
	callbackSecret = "cb-e2e-hmac-secret-5a4b3c2d1e"
	baseImage      = "af-test/busybox:1"
)

var env struct {
	runnerBin string
	binDir    string // holds the nixpacks stand-in, named nixpacks
	daemon    *dockerd.Daemon
	registry  *registry.Registry
	git       *gitserver.Server
	sink      *callbacksink.Sink
}

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode (needs dockerd, docker-registry, git)")
		os.Exit(0)
	}
	code, err := setUp(m)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e set-up: %v\n", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setUp(m *testing.M) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	// The services live as long as the suite: each stops when the context
	// it was started with ends, and the suite runs longer than set-up may.
	svc := context.Background()
	defer cancel()
	tmp, err := os.MkdirTemp("", "af-e2e-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)

	env.binDir = filepath.Join(tmp, "bin")
	env.runnerBin = filepath.Join(env.binDir, "runner")
	for out, pkg := range map[string]string{
		env.runnerBin:                         "github.com/alternatefutures/af-builder/runner",
		filepath.Join(env.binDir, "nixpacks"): "github.com/alternatefutures/af-builder/internal/testinfra/nixpacksstandin",
	} {
		args := []string{"build", "-o", out}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.CommandContext(ctx, "go", append(args, pkg)...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return 0, fmt.Errorf("build %s: %w", pkg, err)
		}
	}

	dataRoot, err := dockerd.CacheDir()
	if err != nil {
		return 0, err
	}
	if env.daemon, err = dockerd.FromEnv(svc, dockerd.Options{DataRoot: dataRoot}); err != nil {
		return 0, err
	}
	defer env.daemon.Stop()
	if err := dockerd.ImportBusybox(ctx, env.daemon.Host(), baseImage); err != nil {
		return 0, err
	}
	if env.registry, err = registry.Start(svc, registry.Options{User: "af-push", Password: registryPass}); err != nil {
		return 0, err
	}
	defer env.registry.Stop()
	if env.git, err = gitserver.Start(svc, gitserver.Options{Token: gitToken}); err != nil {
		return 0, err
	}
	defer env.git.Stop()
	if env.sink, err = callbacksink.Start(svc, callbacksink.Options{Secret: []byte(callbackSecret)}); err != nil {
		return 0, err
	}
	defer env.sink.Stop()

	code := m.Run()
	if other.reg != nil {
		_ = other.reg.Stop()
	}
	if code == 0 {
		if err := scanForSecrets(); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
			code = 1
		}
	}
	return code, nil
}
