// Command runner is the build container's entrypoint: it takes one build's
// env contract, clones, detects, plans, builds and pushes, and reports every
// step to the platform's API. `runner detect DIR` prints what detection
// decides for a directory, without building.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sethvargo/go-envconfig"
	"golang.org/x/sys/unix"

	"github.com/alternatefutures/af-builder/runner/buildlog"
	"github.com/alternatefutures/af-builder/runner/detect"
	"github.com/alternatefutures/af-builder/runner/failure"
	"github.com/alternatefutures/af-builder/runner/pipeline"
	"github.com/alternatefutures/af-builder/runner/plan"
	"github.com/alternatefutures/af-builder/runner/report"
	"github.com/alternatefutures/af-builder/shared/callback"
	"github.com/alternatefutures/af-builder/shared/contract"
	"github.com/alternatefutures/af-builder/shared/redact"
)

// Exit codes: a caller (a Job's status, the local executor) can tell them apart.
const (
	exitOK             = 0
	exitBuildFailed    = 1
	exitBadConfig      = 2
	exitReportFailed   = 3
	exitUsage          = 64
	terminalBudget     = 2 * time.Minute
	terminalOnShutdown = 20 * time.Second
)

var (
	errSignal = errors.New("the runner received SIGTERM: the build was cancelled or its pod was stopped")
)

func main() {
	if len(os.Args) > 1 {
		os.Exit(subcommand(os.Args[1:]))
	}
	os.Exit(build())
}

func subcommand(args []string) int {
	switch args[0] {
	case "detect":
		if len(args) != 2 {
			fmt.Fprintln(os.Stderr, "usage: runner detect DIR")
			return exitUsage
		}
		res, err := detect.Detect(context.Background(), args[1])
		if err != nil {
			fmt.Fprintf(os.Stderr, "detect: %v\n", err)
			return exitBuildFailed
		}
		if err := detect.PrintJSON(os.Stdout, res); err != nil {
			fmt.Fprintf(os.Stderr, "detect: %v\n", err)
			return exitBuildFailed
		}
		return exitOK
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\nusage: runner            (build, configured by the environment)\n       runner detect DIR\n", args[0])
		return exitUsage
	}
}

func build() int {
	// Before anything else: a SIGTERM that arrives early must still end in a
	// terminal status, not kill the process.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	// The environment holds the build's secrets; a non-dumpable process keeps
	// tools the build runs as the same user (nixpacks) from reading it
	// through /proc/<pid>/environ.
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)

	env, cfgErr := contract.Load(context.Background(), envconfig.OsLookuper())
	red := redact.New(env.Secrets()...)
	slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Value.Kind() == slog.KindString || a.Value.Kind() == slog.KindAny {
				return slog.String(a.Key, red.String(a.Value.String()))
			}
			return a
		},
	})))
	blog := buildlog.New(os.Stdout, red)

	if cfgErr != nil {
		blog.Line("config", cfgErr.Error())
		if !env.CallbackUsable() {
			slog.Error("invalid configuration and no usable callback: nothing can be reported", "err", cfgErr)
			return exitBadConfig
		}
		rep := report.New(newClient(env), env.BuildJobID, blog, time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), terminalBudget)
		defer cancel()
		err := rep.Finish(ctx, callback.Payload{
			Status:       callback.Failed,
			ErrorMessage: cfgErr.Error(),
			FailedPhase:  string(failure.Config),
			ErrorClass:   string(configClass(cfgErr)),
		})
		if err != nil {
			slog.Error("could not report the failure", "err", err)
		}
		return exitBadConfig
	}

	work, err := os.MkdirTemp("", "af-build-")
	if err != nil {
		blog.Line("config", "cannot create a work directory: "+err.Error())
		return exitBuildFailed
	}
	defer os.RemoveAll(work)

	stopped, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	shutdown := make(chan struct{})
	go func() {
		select {
		case <-sigs:
			close(shutdown)
			cancel(errSignal)
		case <-stopped.Done():
		}
	}()
	ctx, cancelTimeout := context.WithTimeoutCause(stopped, env.BuildTimeout,
		fmt.Errorf("the build did not finish within BUILD_TIMEOUT (%s)", env.BuildTimeout))
	defer cancelTimeout()

	rep := report.New(newClient(env), env.BuildJobID, blog, env.LogStreamInterval)
	blog.Printf("start", "%s", env.String())
	rep.Start(context.Background())

	out, err := pipeline.Run(ctx, pipeline.Config{
		Env:      env,
		WorkDir:  work,
		Nixpacks: plan.Nixpacks{Bin: os.Getenv("NIXPACKS_BIN")},
		Log:      blog,
		Timeouts: pipeline.DefaultTimeouts,
	})

	budget := terminalBudget
	select {
	case <-shutdown:
		// Inside the pod's grace period: the terminal status must go out first.
		budget = terminalOnShutdown
	default:
	}
	tctx, tcancel := context.WithTimeout(context.Background(), budget)
	defer tcancel()
	payload := terminalPayload(ctx, env, out, err)
	if err != nil {
		blog.Printf("report", "build failed in phase %s (%s): %s", payload.FailedPhase, payload.ErrorClass, payload.ErrorMessage)
	} else {
		blog.Printf("report", "build succeeded: %s@%s", env.ImageTag, out.ImageDigest)
	}
	payload.ErrorMessage = red.String(payload.ErrorMessage)
	if rerr := rep.Finish(tctx, payload); rerr != nil {
		slog.Error("terminal status not delivered", "status", payload.Status, "err", rerr)
		return exitReportFailed
	}
	if err != nil {
		return exitBuildFailed
	}
	return exitOK
}

// userSettings are the contract variables that come from the service's
// settings; every other one is set by the platform.
var userSettings = map[string]bool{
	"ROOT_DIRECTORY": true, "BUILD_COMMAND": true, "BUILD_COMMAND_B64": true,
	"START_COMMAND": true, "START_COMMAND_B64": true,
}

// configClass blames the user only when every bad variable is one of theirs.
func configClass(err error) failure.Class {
	var es contract.Errors
	if !errors.As(err, &es) {
		return failure.Infrastructure
	}
	for _, f := range es.Fields() {
		if !userSettings[f] {
			return failure.Infrastructure
		}
	}
	return failure.User
}

func newClient(env contract.Env) *callback.Client {
	return callback.New(env.CallbackURL, env.CallbackToken)
}

// terminalPayload turns the pipeline's result into the one terminal status.
// A stop from outside (SIGTERM, BUILD_TIMEOUT) is reported as the reason,
// whichever phase noticed it.
func terminalPayload(ctx context.Context, env contract.Env, out pipeline.Outcome, err error) callback.Payload {
	if err == nil {
		p := callback.Payload{
			Status:            callback.Succeeded,
			ImageTag:          env.ImageTag,
			CommitSHA:         out.CommitSHA,
			DetectedFramework: out.Detected.Framework,
			DetectedPort:      out.Detected.Port,
			ImageDigest:       out.ImageDigest,
			PhaseTimingsMs:    out.TimingsMs(),
			CacheHit:          out.Steps.CacheHit(),
			CachedSteps:       out.Steps.Cached,
			Steps:             out.Steps.Total,
		}
		return p
	}
	fe := failure.From(out.Phase, err)
	if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
		class := failure.User
		if errors.Is(cause, errSignal) {
			class = failure.Infrastructure
		}
		fe = failure.New(fe.Phase, class, cause.Error(), err)
	}
	return callback.Payload{
		Status:         callback.Failed,
		CommitSHA:      out.CommitSHA,
		ErrorMessage:   fe.Message,
		FailedPhase:    string(fe.Phase),
		ErrorClass:     string(fe.Class),
		PhaseTimingsMs: out.TimingsMs(),
	}
}
