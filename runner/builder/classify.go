package builder

import (
	"regexp"
	"strings"

	"github.com/alternatefutures/af-builder/runner/failure"
)

// ClassifyBuildError separates the repository's faults (a failing step, a
// bad Dockerfile, a base image that does not exist) from the engine's. What
// it does not recognise is the platform's: never the user's fault until we
// know it is.
func ClassifyBuildError(msg string, err error) error {
	lower := strings.ToLower(msg)
	has := func(subs ...string) bool {
		for _, s := range subs {
			if strings.Contains(lower, s) {
				return true
			}
		}
		return false
	}
	switch {
	case has("no space left on device", "out of memory", "cannot allocate memory"):
		return failure.Wrap(failure.Infrastructure, msg, err)
	case has("did not complete successfully", "executor failed running", "exit code:",
		"dockerfile parse error", "failed to parse dockerfile", "unknown instruction",
		"failed to compute cache key", "pull access denied", "failed to read dockerfile",
		"invalid reference format", "unknown flag", "no build stage", "failed to process"),
		has("not found") && has("failed to solve"):
		return failure.Wrap(failure.User, msg, err)
	case has("timeout", "connection reset", "too many requests", "temporary"):
		return failure.Wrap(failure.Transient, msg, err)
	default:
		return failure.Wrap(failure.Infrastructure, msg, err)
	}
}

// serverError is an HTTP 5xx status in the registry's message. It must be a
// whole number: a tag or digest full of hex digits is not a status.
var serverError = regexp.MustCompile(`\b5\d\d\b`)

// ClassifyPushError says whose fault a registry's refusal of a push is.
func ClassifyPushError(msg string) error {
	lower := strings.ToLower(msg)
	switch {
	case strings.Contains(lower, "unauthorized"), strings.Contains(lower, "authentication required"),
		strings.Contains(lower, "denied"), strings.Contains(lower, "forbidden"),
		strings.Contains(lower, "no basic auth credentials"):
		// The platform mints the registry credentials: not the user's fault.
		return failure.Wrap(failure.Infrastructure, "the registry rejected the push credentials: "+msg, nil)
	case strings.Contains(lower, "blob upload unknown"), strings.Contains(lower, "timeout"),
		strings.Contains(lower, "connection"), strings.Contains(lower, "eof"), serverError.MatchString(lower):
		return failure.Wrap(failure.Transient, "pushing to the registry failed: "+msg, nil)
	default:
		return failure.Wrap(failure.Infrastructure, "pushing to the registry failed: "+msg, nil)
	}
}
