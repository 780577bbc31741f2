package engine

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alternatefutures/af-builder/runner/failure"
)

func classOf(t *testing.T, err error) failure.Class {
	t.Helper()
	var fe *failure.Error
	if !errors.As(err, &fe) {
		t.Fatalf("%v (%T) is not a *failure.Error", err, err)
	}
	return fe.Class
}

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
		cause := &StreamError{Message: tc.msg}
		err := classifyBuildError(tc.msg, cause)
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
		err := classifyPushError(tc.msg)
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

func TestWaitReadyGivesUpAtTheDeadlineWhenNothingListens(t *testing.T) {
	// A port that was just free: connections are refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	eng, err := Connect("tcp://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	const limit = 400 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	start := time.Now()
	v, err := eng.WaitReady(ctx)
	elapsed := time.Since(start)

	if err == nil {
		t.Fatalf("WaitReady = %q, nil with nothing listening", v)
	}
	var fe *failure.Error
	if !errors.As(err, &fe) || fe.Class != failure.Infrastructure {
		t.Fatalf("err = %v, want an infrastructure failure of the engine phase", err)
	}
	if !strings.Contains(fe.Message, addr) {
		t.Errorf("message %q does not name the engine %s", fe.Message, addr)
	}
	if fe.Err == nil {
		t.Errorf("error %q does not keep the last attempt's cause", err)
	}
	if elapsed < limit {
		t.Errorf("gave up after %s, before the %s deadline", elapsed, limit)
	}
	if elapsed > limit+2*time.Second {
		t.Errorf("gave up %s after the deadline", elapsed-limit)
	}
}

func TestWaitReadyRetriesUntilTheEngineAnswers(t *testing.T) {
	var pings atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_ping" {
			http.NotFound(w, r)
			return
		}
		// A dind sidecar still starting: refuse the first few pings.
		if pings.Add(1) <= 6 {
			http.Error(w, `{"message":"starting"}`, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Api-Version", "1.41")
		w.Write([]byte("OK"))
	}))
	defer srv.Close()

	eng, err := Connect("tcp://" + strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := eng.WaitReady(ctx)
	if err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	if v != "1.41" {
		t.Errorf("API version = %q, want 1.41", v)
	}
	if n := pings.Load(); n < 7 {
		t.Errorf("%d pings; the refused ones were not retried", n)
	}
}
