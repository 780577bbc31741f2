package contract

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/alternatefutures/af-builder/shared/token"
)

// What the runner and the executors that start it must agree on, beyond the
// variables themselves.

// Runner exit codes. After 0, 1 and 2 the runner has delivered its own
// terminal status (or, for 2, did its best to); anything else, a signal
// included, means nobody reported and dispatch's reaper must.
const (
	ExitSucceeded = 0
	// ExitFailed: the build failed and FAILED was delivered.
	ExitFailed = 1
	// ExitBadConfig: the contract was invalid; FAILED was sent when the
	// callback settings allowed it.
	ExitBadConfig = 2
	// ExitReportFailed: the terminal status could not be delivered.
	ExitReportFailed = 3
	// ExitUsage: the command line was wrong (runner subcommands).
	ExitUsage = 64
)

// RunnerReported reports whether a runner that exited with code delivered
// its own terminal status.
func RunnerReported(code int) bool {
	return code == ExitSucceeded || code == ExitFailed || code == ExitBadConfig
}

// ShutdownReportBudget is how long the runner, after SIGTERM, gives its
// terminal callback, retries included. An executor must allow it (and the
// time to stop the build before it) between SIGTERM and SIGKILL.
const ShutdownReportBudget = 20 * time.Second

// ReportedMark is what the runner writes to REPORTED_FILE once SUCCEEDED is
// delivered, before the registry cache export that follows it: the
// executor's sign that the build is over for the platform although the
// runner still runs. Dispatch then neither supersedes, cancels nor reaps
// it, which would send a second terminal status.
const ReportedMark = "af-builder: SUCCEEDED delivered"

// PodReportedFile is REPORTED_FILE on Kubernetes: the container's
// termination log, which the kubelet makes writable for any user. The
// runner container's readiness probe tests that it is not empty, so the
// Job counts a ready pod once the build is reported; and the kubelet copies
// it into the container's terminated state, where the reaper finds it even
// when the pod is killed during the export.
const PodReportedFile = "/dev/termination-log"

// userSettings are the contract variables that come from a service's
// settings; every other one is set by the platform.
var userSettings = []string{"ROOT_DIRECTORY", "BUILD_COMMAND", "BUILD_COMMAND_B64", "START_COMMAND", "START_COMMAND_B64", "BUILDER"}

// IsUserSetting reports whether the variable comes from the service's
// settings, so a problem with it is the user's to fix.
func IsUserSetting(name string) bool { return slices.Contains(userSettings, name) }

// RunnerDefaults are the contract values an operator sets once for every
// build. The runner's Env and dispatch's configuration both embed it, so
// the variables and their defaults are declared here once and passed whole.
type RunnerDefaults struct {
	// LogStreamInterval and BuildTimeout also accept a bare number of
	// seconds ("5"), as the shell runner read them; BuildTimeout may come
	// as service-cloud-api's AF_BUILD_TIMEOUT_SECONDS (see seconds.go).
	BuildTimeout      time.Duration `env:"BUILD_TIMEOUT, default=30m"`
	LogStreamInterval time.Duration `env:"LOG_STREAM_INTERVAL, default=5s"`
	// BuildNetwork is the engine's network mode for RUN steps; empty means
	// the daemon's default.
	BuildNetwork string `env:"BUILD_NETWORK"`
	// TARGET_PLATFORM and the BASE_IMAGE_* mirror settings.
	PlannerDefaults
}

// Validate checks the defaults by the contract's own rules, so a bad
// BUILD_TIMEOUT in dispatch's configuration is refused at start-up rather
// than failing every build.
func (d RunnerDefaults) Validate() error {
	return collect(d.normalize)
}

func (d *RunnerDefaults) normalize(check func(string, error)) {
	switch d.BuildNetwork {
	case "", "default", "host", "none", "bridge":
	default:
		check("BUILD_NETWORK", errors.New("must be one of default, host, none, bridge"))
	}
	if d.LogStreamInterval < 500*time.Millisecond || d.LogStreamInterval > 5*time.Minute {
		check("LOG_STREAM_INTERVAL", errors.New("must be between 500ms and 5m"))
	}
	if d.BuildTimeout < 10*time.Second || d.BuildTimeout > MaxBuildTimeout {
		check("BUILD_TIMEOUT", fmt.Errorf("must be between 10s and %v (the callback token expires %v after dispatch)",
			MaxBuildTimeout, token.Lifetime))
	}
	d.PlannerDefaults.normalize(check)
}

// collect runs a normalize step and returns what it found as Errors.
func collect(normalize func(check func(string, error))) error {
	var errs Errors
	normalize(func(v string, err error) {
		if err != nil {
			errs = append(errs, &FieldError{Var: v, Err: err})
		}
	})
	if len(errs) > 0 {
		return errs
	}
	return nil
}
