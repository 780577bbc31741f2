package contract

import (
	"slices"
	"time"
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

// userSettings are the contract variables that come from a service's
// settings; every other one is set by the platform.
var userSettings = []string{"ROOT_DIRECTORY", "BUILD_COMMAND", "BUILD_COMMAND_B64", "START_COMMAND", "START_COMMAND_B64", "BUILDER"}

// IsUserSetting reports whether the variable comes from the service's
// settings, so a problem with it is the user's to fix.
func IsUserSetting(name string) bool { return slices.Contains(userSettings, name) }

// RunnerDefaults are the contract values dispatch gives every build unless
// the request says otherwise. Dispatch's configuration embeds it, so the
// variables and their defaults are declared here once and passed whole.
type RunnerDefaults struct {
	BuildTimeout      time.Duration `env:"BUILD_TIMEOUT, default=30m"`
	LogStreamInterval time.Duration `env:"LOG_STREAM_INTERVAL, default=5s"`
	// BuildNetwork is the engine's network mode for RUN steps; empty means
	// the daemon's default.
	BuildNetwork string `env:"BUILD_NETWORK"`
	// TARGET_PLATFORM and the BASE_IMAGE_* mirror settings.
	PlannerDefaults
}
