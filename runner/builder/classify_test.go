package builder

import (
	"errors"
	"strings"
	"testing"

	"github.com/alternatefutures/af-builder/runner/failure"
)

// streamError stands for an error a daemon reported in its stream.
type streamError struct{ msg string }

func (e *streamError) Error() string { return e.msg }

func TestClassifyBuildError(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want failure.Class
	}{
		{`process "/bin/sh -c npm ci" did not complete successfully: exit code: 1`, failure.User},
		{`failed to solve: dockerfile parse error on line 4: unknown instruction: RUNN`, failure.User},
		{`failed to parse dockerfile: file with no instructions`, failure.User},
		{`failed to solve: failed to compute cache key: failed to calculate checksum of ref abc::def: "/app/dist": not found`, failure.User},
		{`failed to solve: node:99: docker.io/library/node:99: not found`, failure.User},
		{`pull access denied for private/base, repository does not exist or may require 'docker login'`, failure.User},
		{`failed to read dockerfile: open Dockerfile: no such file or directory`, failure.User},
		// A failing RUN step that mentions a timeout is still the step's failure.
		{`process "/bin/sh -c curl --max-time 1 x" did not complete successfully: exit code: 28 (timeout)`, failure.User},
		{`failed to solve: failed to resolve source metadata for docker.io/library/node:20: dial tcp: i/o timeout`, failure.Transient},
		{`failed to solve: read tcp 10.0.0.1:1234->1.2.3.4:443: read: connection reset by peer`, failure.Transient},
		{`failed to solve: unexpected status from HEAD request: 429 Too Many Requests`, failure.Transient},
		{`failed to solve: temporary failure in name resolution`, failure.Transient},
		{`executor failed running [/bin/sh -c exit 3]: exit code: 3`, failure.User}, // dockerd 20.10's wording
		{`failed to solve: failed to export image: no space left on device`, failure.Infrastructure},
		{`rpc error: code = Unavailable desc = error reading from server: EOF`, failure.Infrastructure},
		{`something nobody anticipated`, failure.Infrastructure},
	} {
		cause := &streamError{msg: tc.msg}
		err := ClassifyBuildError(tc.msg, cause)
		var fe *failure.Error
		if !errors.As(err, &fe) {
			t.Fatalf("%q: %T is not a *failure.Error", tc.msg, err)
		}
		if fe.Class != tc.want {
			t.Errorf("%q: %s/%s, want build/%s", tc.msg, fe.Phase, fe.Class, tc.want)
		}
		if fe.Message != tc.msg || !errors.Is(err, cause) {
			t.Errorf("%q: message %q, cause kept %v; want the engine's message and cause", tc.msg, fe.Message, errors.Is(err, cause))
		}
	}
}

func TestClassifyPushError(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want failure.Class
	}{
		{`unauthorized: authentication required`, failure.Infrastructure},
		{`no basic auth credentials`, failure.Infrastructure},
		{`denied: requested access to the resource is denied`, failure.Infrastructure},
		{`denied: permission_denied: write_package`, failure.Infrastructure},
		{`received unexpected HTTP status: 403 Forbidden`, failure.Infrastructure},
		{`blob upload unknown to registry`, failure.Transient},
		{`Patch "https://ghcr.io/v2/af/app/blobs/uploads/x": net/http: TLS handshake timeout`, failure.Transient},
		{`Put "https://ghcr.io/v2/af/app/manifests/abc": read: connection reset by peer`, failure.Transient},
		{`Patch "https://ghcr.io/v2/af/app/blobs/uploads/x": EOF`, failure.Transient},
		{`received unexpected HTTP status: 500 Internal Server Error`, failure.Transient},
		{`received unexpected HTTP status: 503 Service Unavailable`, failure.Transient},
		{`manifest invalid: manifest invalid`, failure.Infrastructure},
		// Digits in a tag or digest say nothing about the registry's health:
		// the same failure must not be "retry" for one commit and not another.
		{`tag does not exist: ghcr.io/af/u--o-r:5a1b2c3d4e5f`, failure.Infrastructure},
		{`tag does not exist: ghcr.io/af/u--o-r:0a1b2c3d4e6f`, failure.Infrastructure},
		{`manifest invalid: manifest references sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08`, failure.Infrastructure},
	} {
		err := ClassifyPushError(tc.msg)
		var fe *failure.Error
		if !errors.As(err, &fe) {
			t.Fatalf("%q: %T is not a *failure.Error", tc.msg, err)
		}
		if fe.Class != tc.want {
			t.Errorf("%q: %s/%s, want push/%s", tc.msg, fe.Phase, fe.Class, tc.want)
		}
		if !strings.Contains(fe.Message, tc.msg) {
			t.Errorf("%q: message %q drops the registry's words", tc.msg, fe.Message)
		}
	}
}
