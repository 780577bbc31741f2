// Package failure gives every build error the phase it happened in and a
// class, so the platform can tell a user "your RUN step failed" apart from
// "try again" and "page the operator".
package failure

import (
	"context"
	"errors"
	"fmt"
)

// Phase is a step of the build, as named in the build log and the callback.
type Phase string

const (
	Config Phase = "config"
	Engine Phase = "engine"
	Clone  Phase = "clone"
	Detect Phase = "detect"
	Plan   Phase = "plan"
	Build  Phase = "build"
	Push   Phase = "push"
	Report Phase = "report"
)

// Class says whose move it is.
type Class string

const (
	// User: the repository or the service's settings must change.
	User Class = "user"
	// Transient: the same build may well pass if retried.
	Transient Class = "transient"
	// Infrastructure: the platform is at fault (credentials it minted, the engine).
	Infrastructure Class = "infrastructure"
)

// Error is a classified build error. Message is what the user reads; Err keeps
// the cause for operators and errors.Is.
type Error struct {
	Phase   Phase
	Class   Class
	Message string
	Err     error
}

func (e *Error) Error() string {
	what := "build step"
	if e.Phase != "" {
		what = string(e.Phase)
	}
	if e.Err == nil || e.Message == e.Err.Error() {
		return fmt.Sprintf("%s failed: %s", what, e.Message)
	}
	return fmt.Sprintf("%s failed: %s: %v", what, e.Message, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// New classifies err. Message may be empty, in which case the cause is the message.
func New(phase Phase, class Class, message string, err error) *Error {
	if message == "" && err != nil {
		message = err.Error()
	}
	return &Error{Phase: phase, Class: class, Message: message, Err: err}
}

// Wrap classifies err without naming a phase. Leaf packages (clone, engine,
// plan) use it: they know whose fault an error is, but only the pipeline
// knows which phase it is running, so it stamps the phase (see From).
func Wrap(class Class, message string, err error) *Error {
	return New("", class, message, err)
}

// Userf is a user error with a formatted message and no separate cause; the
// pipeline stamps its phase.
func Userf(format string, args ...any) *Error {
	return Wrap(User, fmt.Sprintf(format, args...), nil)
}

// From returns err's classification with phase filled in where the leaf left
// it empty, or classifies an unclassified err as an infrastructure failure of
// phase, the safe default: it is never the user's fault until we know it is.
func From(phase Phase, err error) *Error {
	var fe *Error
	if errors.As(err, &fe) {
		if fe.Phase == "" {
			stamped := *fe
			stamped.Phase = phase
			return &stamped
		}
		return fe
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return New(phase, Transient, "timed out", err)
	}
	return New(phase, Infrastructure, "", err)
}
