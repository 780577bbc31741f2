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
		t.Fatalf("WaitReady = %+v, nil with nothing listening", v)
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
	if v.Line != "Docker engine ready (API 1.41)" {
		t.Errorf("WaitReady says %q, want the engine and its API version 1.41", v.Line)
	}
	if v.CopyLink {
		t.Error("an engine of API 1.41 (Docker 20.10) is said to take COPY --link")
	}
	if n := pings.Load(); n < 7 {
		t.Errorf("%d pings; the refused ones were not retried", n)
	}
}

func TestEnginesFromDocker23TakeLinkedCopies(t *testing.T) {
	for api, want := range map[string]bool{
		"1.40":  false, // Docker 19.03
		"1.41":  false, // Docker 20.10, Debian bookworm's: its frontend refuses COPY --link
		"1.42":  true,  // Docker 23.0, BuildKit 0.11
		"1.47":  true,
		"1.100": true,
	} {
		if got := copyLink(api); got != want {
			t.Errorf("copyLink(%q) = %v, want %v", api, got, want)
		}
	}
}
