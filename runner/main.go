// Command runner is the build container's entrypoint: it takes one build's
// env contract, clones, detects, plans, builds and pushes, and reports every
// step to the platform's API. `runner detect DIR` prints what detection
// decides for a directory, and `runner plan DIR` the planner and Dockerfile
// a build would use, without building.
package main

import (
	"context"
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
	"github.com/alternatefutures/af-builder/runner/pipeline"
	"github.com/alternatefutures/af-builder/runner/plan"
	"github.com/alternatefutures/af-builder/runner/report"
	"github.com/alternatefutures/af-builder/shared/callback"
	"github.com/alternatefutures/af-builder/shared/contract"
	"github.com/alternatefutures/af-builder/shared/redact"
)

// Exit codes: a caller (a Job's status, the local executor) can tell them apart.
const (
	exitOK           = contract.ExitSucceeded
	exitBuildFailed  = contract.ExitFailed
	exitBadConfig    = contract.ExitBadConfig
	exitReportFailed = contract.ExitReportFailed
	exitUsage        = contract.ExitUsage
	terminalBudget   = 2 * time.Minute
	// terminalOnShutdown is what the terminal status may take once SIGTERM
	// has arrived, whenever it arrives: the pod's grace period must cover it
	// and the build's stop.
	terminalOnShutdown = contract.ShutdownReportBudget
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
	case "plan":
		return planCommand(args[1:], os.Stdout, os.Stderr)
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\nusage: runner            (build, configured by the environment)\n       runner detect DIR\n       runner plan [--format json] DIR\n", args[0])
		return exitUsage
	}
}

func build() int {
	// Before anything else: a SIGTERM that arrives early must still end in a
	// terminal status, not kill the process.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	shutdown := make(chan struct{})
	go func() {
		<-sigs
		close(shutdown)
	}()
	// The environment holds the build's secrets; a non-dumpable process keeps
	// tools the build runs as the same user (nixpacks) from reading it
	// through /proc/<pid>/environ.
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)

	env, cfgErr := contract.Load(context.Background(), envconfig.OsLookuper())
	red := redact.NewWithLogins(env.Logins(), env.Secrets()...)
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
		// Delivered or not (finish logs why), the exit code says "configuration".
		_ = finish(rep, report.ConfigFailure(cfgErr), shutdown)
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
	go func() {
		select {
		case <-shutdown:
			cancel(report.ErrSignal)
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
	final := report.Outcome(ctx, env, out, err)
	rerr := finish(rep, final, shutdown)
	if rerr == nil && final.Status == callback.Succeeded && env.ReportedFile != "" {
		// The executor's sign that only the cache export is left (see
		// contract.PodReportedFile); without it the build still ends,
		// only later.
		if werr := os.WriteFile(env.ReportedFile, []byte(contract.ReportedMark+"\n"), 0o644); werr != nil {
			slog.Warn("cannot mark the build reported", "file", env.ReportedFile, "err", werr)
		}
	}
	if out.AfterReport != nil {
		// After SUCCEEDED, so a signal (not the build's timeout, which is
		// about the build) is what stops it.
		out.AfterReport(stopped)
	}
	if rerr != nil {
		return exitReportFailed
	}
	if err != nil {
		return exitBuildFailed
	}
	return exitOK
}

// finish sends the terminal status within terminalBudget, or within
// terminalOnShutdown of a SIGTERM, whether the signal came before or while
// the status is being retried: the pod is killed at the end of its grace
// period, and a runner that exits on its own leaves a clear record.
func finish(rep *report.Reporter, p callback.Payload, shutdown <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), terminalBudget)
	defer cancel()
	go func() {
		select {
		case <-shutdown:
		case <-ctx.Done():
			return
		}
		t := time.AfterFunc(terminalOnShutdown, cancel)
		<-ctx.Done()
		t.Stop()
	}()
	err := rep.Finish(ctx, p)
	if err != nil {
		slog.Error("terminal status not delivered", "status", p.Status, "err", err)
	}
	return err
}

func newClient(env contract.Env) *callback.Client {
	return callback.New(env.CallbackURL, env.CallbackToken)
}
