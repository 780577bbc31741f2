package failure

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"testing"
)

func TestFromKeepsAnExistingClassification(t *testing.T) {
	orig := New(Clone, User, "branch main was not found", nil)
	// Wrapped on its way up, and asked about from another phase.
	got := From(Build, fmt.Errorf("run: %w", orig))
	if got != orig {
		t.Fatalf("From = %#v, want the original *Error %#v", got, orig)
	}
	if got.Phase != Clone || got.Class != User {
		t.Errorf("phase/class = %s/%s, want clone/user", got.Phase, got.Class)
	}
}

func TestFromStampsThePhaseALeafLeftOut(t *testing.T) {
	leaf := Userf("branch %s was not found", "main")
	got := From(Clone, fmt.Errorf("checkout: %w", leaf))
	if got.Phase != Clone || got.Class != User || got.Message != "branch main was not found" {
		t.Fatalf("From = %s/%s %q, want clone/user with the leaf's message", got.Phase, got.Class, got.Message)
	}
	if leaf.Phase != "" {
		t.Errorf("From changed the leaf's own error to phase %q", leaf.Phase)
	}
}

func TestFromClassifiesAnUnknownErrorAsInfrastructure(t *testing.T) {
	cause := fmt.Errorf("open /work: %w", fs.ErrPermission)
	got := From(Detect, cause)
	if got.Phase != Detect || got.Class != Infrastructure {
		t.Errorf("phase/class = %s/%s, want detect/infrastructure", got.Phase, got.Class)
	}
	if got.Message != cause.Error() {
		t.Errorf("Message = %q, want the cause's text %q", got.Message, cause.Error())
	}
	if !errors.Is(got, fs.ErrPermission) {
		t.Error("the cause is not reachable with errors.Is")
	}
}

func TestFromClassifiesADeadlineAsTransient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	<-ctx.Done()
	got := From(Push, fmt.Errorf("push layer: %w", ctx.Err()))
	if got.Phase != Push || got.Class != Transient || got.Message != "timed out" {
		t.Errorf("From = %s/%s %q, want push/transient \"timed out\"", got.Phase, got.Class, got.Message)
	}
	if !errors.Is(got, context.DeadlineExceeded) {
		t.Error("the deadline is not reachable with errors.Is")
	}
	// Cancellation is not a deadline: nobody knows yet whose fault it is.
	if c := From(Push, context.Canceled); c.Class != Infrastructure {
		t.Errorf("From(context.Canceled).Class = %s, want infrastructure", c.Class)
	}
}

func TestErrorText(t *testing.T) {
	cause := errors.New("exit status 1")
	for _, tc := range []struct {
		name string
		err  *Error
		want string
	}{
		{"message and cause", New(Build, User, "RUN npm ci failed", cause), "build failed: RUN npm ci failed: exit status 1"},
		{"message only", New(Clone, User, `ROOT_DIRECTORY "web" does not exist`, nil), `clone failed: ROOT_DIRECTORY "web" does not exist`},
		{"not yet stamped by the pipeline", Userf("ROOT_DIRECTORY %q does not exist", "web"), `build step failed: ROOT_DIRECTORY "web" does not exist`},
		{"cause as message is not repeated", New(Engine, Infrastructure, "", cause), "engine failed: exit status 1"},
		{"message equal to cause is not repeated", New(Plan, User, "exit status 1", cause), "plan failed: exit status 1"},
		{"neither", New(Push, Transient, "", nil), "push failed: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("Error() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNewUsesTheCauseAsMessageWhenNoneIsGiven(t *testing.T) {
	cause := errors.New("dial tcp 127.0.0.1:2375: connect: connection refused")
	e := New(Engine, Infrastructure, "", cause)
	if e.Message != cause.Error() {
		t.Errorf("Message = %q, want %q", e.Message, cause.Error())
	}
	if errors.Unwrap(e) != cause {
		t.Errorf("Unwrap = %v, want the cause", errors.Unwrap(e))
	}
}
