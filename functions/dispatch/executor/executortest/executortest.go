// Package executortest is the behaviour every executor.Executor must have,
// run against each real implementation: the Kubernetes one on a real API
// server, the local one with the real runner binary.
package executortest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/alternatefutures/af-builder/functions/dispatch/executor"
)

// Harness gives the suite one executor and valid builds for it. Builds made
// by NewBuild must not finish on their own within a minute, so the suite can
// observe them unfinished.
type Harness struct {
	Executor executor.Executor
	NewBuild func(t *testing.T, id, serviceID, branch string) executor.Build
}

// Run runs the suite; newHarness is called once per test.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"SubmitTwiceStartsOneBuild", submitTwiceStartsOneBuild},
		{"SubmittedBuildIsPendingOrRunning", submittedBuildIsPendingOrRunning},
		{"UnknownBuildIsNotFound", unknownBuildIsNotFound},
		{"CancelRemovesTheBuild", cancelRemovesTheBuild},
		{"ActiveListsUnfinishedBuildsOfOneServiceAndBranch", activeListsOneServiceAndBranch},
		{"ActiveIsOldestFirst", activeIsOldestFirst},
		{"ActiveOrdersPushesByPushTime", activeOrdersPushesByPushTime},
		{"ReapLeavesUnfinishedBuildsAlone", reapLeavesUnfinishedBuildsAlone},
		{"SupersededIsAllButTheNewestOfEachServiceAndBranch", supersededAllButNewest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newHarness(t)) })
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func submit(t *testing.T, h Harness, b executor.Build) executor.Handle {
	t.Helper()
	hd, err := h.Executor.Submit(ctx(t), b)
	if err != nil {
		t.Fatalf("Submit %s: %v", b.Env.BuildJobID, err)
	}
	t.Cleanup(func() { _ = h.Executor.Cancel(context.Background(), b.Env.BuildJobID) })
	return hd
}

func submitTwiceStartsOneBuild(t *testing.T, h Harness) {
	b := h.NewBuild(t, "dup-1", "svc", "main")
	first := submit(t, h, b)
	second := submit(t, h, b)
	if !first.Created || second.Created {
		t.Errorf("Created = %v then %v, want true then false", first.Created, second.Created)
	}
	if first.Name != second.Name || first.Namespace != second.Namespace || first.Name == "" {
		t.Errorf("handles differ: %+v and %+v", first, second)
	}
	ids, err := h.Executor.Active(ctx(t), "svc", "main")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, []string{"dup-1"}) {
		t.Errorf("Active = %v, want exactly [dup-1]", ids)
	}
}

func submittedBuildIsPendingOrRunning(t *testing.T, h Harness) {
	b := h.NewBuild(t, "state-1", "svc", "main")
	submit(t, h, b)
	st, err := h.Executor.Status(ctx(t), "state-1")
	if err != nil {
		t.Fatal(err)
	}
	if st != executor.StatePending && st != executor.StateRunning {
		t.Errorf("Status = %s, want pending or running", st)
	}
}

func unknownBuildIsNotFound(t *testing.T, h Harness) {
	st, err := h.Executor.Status(ctx(t), "never-submitted")
	if err != nil || st != executor.StateNotFound {
		t.Errorf("Status = %s, %v; want not_found", st, err)
	}
	if err := h.Executor.Cancel(ctx(t), "never-submitted"); !errors.Is(err, executor.ErrNotFound) {
		t.Errorf("Cancel = %v, want ErrNotFound", err)
	}
}

func cancelRemovesTheBuild(t *testing.T, h Harness) {
	b := h.NewBuild(t, "cancel-1", "svc", "main")
	submit(t, h, b)
	if err := h.Executor.Cancel(ctx(t), "cancel-1"); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	st, err := h.Executor.Status(ctx(t), "cancel-1")
	if err != nil || st != executor.StateNotFound {
		t.Errorf("Status after Cancel = %s, %v; want not_found", st, err)
	}
	ids, err := h.Executor.Active(ctx(t), "svc", "main")
	if err != nil || len(ids) != 0 {
		t.Errorf("Active after Cancel = %v, %v; want none", ids, err)
	}
	if err := h.Executor.Cancel(ctx(t), "cancel-1"); !errors.Is(err, executor.ErrNotFound) {
		t.Errorf("second Cancel = %v, want ErrNotFound", err)
	}
}

func activeListsOneServiceAndBranch(t *testing.T, h Harness) {
	for _, b := range []struct{ id, svc, branch string }{
		{"act-a", "svc-1", "main"},
		{"act-b", "svc-1", "main"},
		{"act-c", "svc-1", "feature/x"},
		{"act-d", "svc-2", "main"},
	} {
		submit(t, h, h.NewBuild(t, b.id, b.svc, b.branch))
	}
	ids, err := h.Executor.Active(ctx(t), "svc-1", "main")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, []string{"act-a", "act-b"}) {
		t.Errorf("Active(svc-1, main) = %v, want [act-a act-b], oldest first", ids)
	}
}

func activeIsOldestFirst(t *testing.T, h Harness) {
	// Names that sort the other way round, so the order cannot come from them.
	for _, id := range []string{"zz-old", "mm-mid", "aa-new"} {
		// Back to back: within one second, which is all creationTimestamp resolves.
		submit(t, h, h.NewBuild(t, id, "svc", "main"))
	}
	ids, err := h.Executor.Active(ctx(t), "svc", "main")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, []string{"zz-old", "mm-mid", "aa-new"}) {
		t.Errorf("Active = %v, want oldest first [zz-old mm-mid aa-new]", ids)
	}
}

func activeOrdersPushesByPushTime(t *testing.T, h Harness) {
	// Submitted newest push first, as a late delivery or a redelivery would.
	now := time.Now()
	for _, b := range []struct {
		id  string
		age time.Duration
	}{{"push-new", 0}, {"push-old", 2 * time.Minute}, {"push-mid", time.Minute}} {
		build := h.NewBuild(t, b.id, "svc", "main")
		build.PushedAt = now.Add(-b.age)
		submit(t, h, build)
	}
	ids, err := h.Executor.Active(ctx(t), "svc", "main")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, []string{"push-old", "push-mid", "push-new"}) {
		t.Errorf("Active = %v, want by push time [push-old push-mid push-new]", ids)
	}
}

func reapLeavesUnfinishedBuildsAlone(t *testing.T, h Harness) {
	if lost, err := h.Executor.Reap(ctx(t)); err != nil || len(lost) != 0 {
		t.Errorf("Reap on a fresh executor = %+v, %v; want nothing", lost, err)
	}
	submit(t, h, h.NewBuild(t, "reap-1", "svc", "main"))
	if lost, err := h.Executor.Reap(ctx(t)); err != nil || len(lost) != 0 {
		t.Errorf("Reap with a build under way = %+v, %v; want nothing", lost, err)
	}
}

func supersededAllButNewest(t *testing.T, h Harness) {
	now := time.Now()
	for _, b := range []struct {
		id, svc, branch string
		age             time.Duration
	}{
		{"sup-old", "svc-1", "main", 2 * time.Minute},
		{"sup-new", "svc-1", "main", 0},
		{"sup-mid", "svc-1", "main", time.Minute},
		{"sup-other-branch", "svc-1", "feature/x", 3 * time.Minute},
		{"sup-other-service", "svc-2", "main", 3 * time.Minute},
		{"sup-no-service", "", "", 3 * time.Minute},
		{"sup-no-service-2", "", "", 0},
	} {
		build := h.NewBuild(t, b.id, b.svc, b.branch)
		build.PushedAt = now.Add(-b.age)
		submit(t, h, build)
	}
	stale, err := h.Executor.Superseded(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range stale {
		if s.By != "sup-new" || s.ServiceID != "svc-1" || s.Branch != "main" {
			t.Errorf("stale %+v, want superseded by sup-new on svc-1/main", s)
		}
		got = append(got, s.BuildJobID)
	}
	if !slices.Equal(got, []string{"sup-old", "sup-mid"}) {
		t.Errorf("Superseded = %v, want [sup-old sup-mid], oldest first", got)
	}
}
