package e2e

import (
	"net/http"
	"testing"
)

// A build that fails validation sends exactly one callback, FAILED, which
// makes the delivery count easy to assert.
func badConfigBuild(t *testing.T) *build {
	repo, shas := newRepo(t, appFiles("v1"))
	b := newBuild(t, repo, shas[0])
	b.Env["IMAGE_TAG"] = "Not A Valid Tag"
	return b
}

func TestCallbackRetriedThroughTwo503sIsDeliveredOnce(t *testing.T) {
	b := badConfigBuild(t)
	env.sink.Script(b.ID, http.StatusServiceUnavailable, http.StatusServiceUnavailable)

	res := b.run(t)

	// IMAGE_TAG is the platform's to set: not the user's fault.
	expectFailure(t, res, "config", "infrastructure", "IMAGE_TAG")
	var codes []int
	for _, d := range res.Deliveries {
		codes = append(codes, d.Answered)
	}
	if len(codes) != 3 || codes[0] != 503 || codes[1] != 503 || codes[2] != 200 {
		t.Fatalf("callback answers = %v, want [503 503 200]", codes)
	}
}

func TestCallbackRejectedWith401IsNotRetriedAndTheRunnerFails(t *testing.T) {
	b := badConfigBuild(t)
	// A token minted with another secret is what a real 401 looks like.
	b.Env["CALLBACK_TOKEN"] = newBuildToken("another-secret", b.ID)

	res := b.run(t)

	if res.ExitCode == 0 {
		t.Fatalf("runner exited 0 although its terminal status was refused")
	}
	if len(res.Deliveries) != 1 || res.Deliveries[0].Answered != http.StatusUnauthorized {
		t.Fatalf("deliveries = %d (first answered %v), want exactly one, answered 401", len(res.Deliveries), answered(res))
	}
}

func TestFullBuildWithA401CallbackSendsNoFurtherUpdatesAndFails(t *testing.T) {
	repo, shas := newRepo(t, appFiles("v3"))
	b := newBuild(t, repo, shas[0])
	b.Env["ROOT_DIRECTORY"] = "apps/api"
	b.Env["CALLBACK_TOKEN"] = newBuildToken("another-secret", b.ID)

	res := b.run(t)

	if res.ExitCode == 0 {
		t.Fatalf("runner exited 0 although the API refused every callback")
	}
	// One refused RUNNING stops the updates; the terminal status is tried once.
	if len(res.Deliveries) != 2 {
		t.Fatalf("%d deliveries, want 2 (first RUNNING, terminal)", len(res.Deliveries))
	}
	for _, d := range res.Deliveries {
		if d.Answered != http.StatusUnauthorized {
			t.Errorf("delivery %s answered %d", d.Status, d.Answered)
		}
	}
}

func answered(res result) any {
	if len(res.Deliveries) == 0 {
		return nil
	}
	return res.Deliveries[0].Answered
}
