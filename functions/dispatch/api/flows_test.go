package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/alternatefutures/af-builder/functions/dispatch/apiauth"
	"github.com/alternatefutures/af-builder/functions/dispatch/subscriptions"
	"github.com/alternatefutures/af-builder/functions/dispatch/webhook/webhooktest"
	"github.com/alternatefutures/af-builder/internal/testinfra/syncbuf"
)

// lookupAPI is service-cloud-api's subscription endpoint as the README
// specifies it: signed request, one reserved BuildJob per tracking service,
// the same ids for the same delivery.
func lookupAPI(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := apiauth.Verify(r, apiSecret, body, time.Now()); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var k subscriptions.PushKey
		if err := json.Unmarshal(body, &k); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		id := func(svc string) string { return "bj_" + k.DeliveryID[:8] + "_" + svc }
		json.NewEncoder(w).Encode(subscriptions.LookupResponse{Builds: []subscriptions.Service{
			{ServiceID: "svc_web", BuildJobID: id("web"), ImageTag: "ghcr.io/acme/u1--web:" + k.CommitSHA[:12], RootDirectory: "apps/web"},
			{ServiceID: "svc_docs", BuildJobID: id("docs"), ImageTag: "ghcr.io/acme/u1--docs:" + k.CommitSHA[:12], WatchPaths: []string{"docs/**"}},
			{ServiceID: "svc_broken", BuildJobID: id("broken"), ImageTag: "ghcr.io/Acme/Broken"},
		}})
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/internal/build-subscriptions"
}

func TestServiceCloudAPISubscriptionsReserveIDsAndGetEveryOneClosed(t *testing.T) {
	t.Parallel()
	h := start(t, options{source: &subscriptions.HTTP{URL: lookupAPI(t), Secret: apiSecret}})
	r := h.deliver("push", "5c8a21e0-0000-4000-8000-000000000001", pushTo(commitA, webhooktest.Commit{Message: "x", Modified: []string{"apps/web/a.ts"}}))
	if r.Code != http.StatusAccepted {
		t.Fatalf("answer %d: %s", r.Code, r.Body)
	}
	builds := buildsByService(t, r)
	if b := builds["svc_web"]; b.Status != "queued" || b.BuildJobID != "bj_5c8a21e0_web" {
		t.Errorf("web = %+v", b)
	}
	if ids := buildIDs(h.jobs()); len(ids) != 1 || ids[0] != "bj_5c8a21e0_web" {
		t.Errorf("jobs = %v", ids)
	}

	// The API created a BuildJob for every service; the ones dispatch does
	// not build are closed, so none stays queued forever.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for id, want := range map[string]struct{ status, msg string }{
		"bj_5c8a21e0_docs":   {"CANCELED", "skipped: none of 1 changed files matches the watch paths"},
		"bj_5c8a21e0_broken": {"FAILED", "imageTag"},
	} {
		d, err := h.sink.WaitTerminal(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if d.Status != want.status || !strings.Contains(d.Payload["errorMessage"].(string), want.msg) {
			t.Errorf("%s: %s %v", id, d.Status, d.Payload["errorMessage"])
		}
	}
	if b := builds["svc_broken"]; b.Status != "invalid" {
		t.Errorf("broken = %+v", b)
	}
}

// The logger here does no redaction: this checks that the code never puts
// a secret into a log line or an answer, not that a filter caught it.
func TestNoSecretReachesALogLineOrAnAnswer(t *testing.T) {
	t.Parallel()
	var logs syncbuf.Buffer
	h := start(t, options{logHandler: slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})})

	// A full day: pushes (one superseding the other), a refused delivery,
	// API builds with good and bad requests, a status read, a cancel.
	h.deliver("push", "delivery-1", webPush(commitA))
	h.deliver("push", "delivery-2", pushTo(commitB, webhooktest.Commit{Message: "both", Modified: []string{"apps/web/x", "docs/y.md"}}))
	h.deliver("push", "delivery-2", pushTo(commitB, webhooktest.Commit{Message: "both", Modified: []string{"apps/web/x", "docs/y.md"}}))
	h.do(webhooktest.Request(h.url+"/webhooks/github", "push", "delivery-bad", webPush(commitA), []byte("wrong")))
	h.call("POST", "/v1/builds", apiRequest("bj-scan"), signed)
	bad := apiRequest("bj-scan-bad")
	bad["imageTag"] = "nope"
	h.call("POST", "/v1/builds", bad, bearer)
	noAccess := apiRequest("bj-scan-noaccess")
	noAccess["repoName"] = "elsewhere"
	h.call("POST", "/v1/builds", noAccess, signed)
	h.call("POST", "/v1/builds", apiRequest("bj-scan-unauth"), none)
	h.call("GET", "/v1/builds/bj-scan", nil, signed)

	// Every credential minted for a build, read back from the cluster.
	var minted []string
	for _, j := range h.jobs() {
		sec := h.secret(j.Name)
		if sec == nil {
			t.Fatalf("no Secret for %s", j.Name)
		}
		for _, v := range sec.Data {
			minted = append(minted, string(v))
		}
	}
	h.call("DELETE", "/v1/builds/bj-scan", nil, signed)

	if len(h.gh.Tokens()) < 2 || len(minted) < 6 {
		t.Fatalf("the flow minted too little to prove anything: %d tokens, %d secret values", len(h.gh.Tokens()), len(minted))
	}
	secrets := map[string]string{
		"webhook secret":  string(webhookSecret),
		"API secret":      string(apiSecret),
		"callback secret": string(callbackSecret),
		"registry token":  registryToken,
	}
	for i, line := range strings.Split(string(h.gh.PrivateKeyPEM), "\n") {
		if len(line) > 40 {
			secrets[fmt.Sprintf("private key line %d", i)] = line
		}
	}
	for _, tok := range h.gh.Tokens() {
		secrets["installation token "+tok[:8]] = tok
	}
	for _, v := range minted {
		if strings.Contains(v, "x-access-token:") || strings.Count(v, ".") == 1 {
			secrets["build secret "+v[:6]] = v
		}
	}

	h.mu.Lock()
	answers := strings.Join(h.responses, "\n")
	h.mu.Unlock()
	output := map[string]string{"logs": logs.String(), "answers": answers}
	if !strings.Contains(output["logs"], "build submitted") {
		t.Fatal("captured no logs")
	}
	for where, text := range output {
		for name, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s contain the %s", where, name)
			}
		}
		if strings.Contains(text, "x-access-token:") {
			t.Errorf("%s contain a credentialed clone URL", where)
		}
	}
}

// sourceFunc is a subscription source for one test.
type sourceFunc func(subscriptions.PushKey) []subscriptions.Service

func (f sourceFunc) Lookup(_ context.Context, k subscriptions.PushKey) ([]subscriptions.Service, error) {
	return f(k), nil
}

// Closing the BuildJobs dispatch will not build, and superseding, post
// callbacks that may each take the whole callback timeout when
// service-cloud-api is slow. They must not use up the webhook's budget
// before every build is submitted: GitHub does not redeliver by itself, so
// a build not started here is lost.
func TestSlowCallbacksDoNotStarveLaterServicesOfTheBudget(t *testing.T) {
	t.Parallel()
	src := sourceFunc(func(k subscriptions.PushKey) []subscriptions.Service {
		id := func(svc string) string { return "bj_" + k.DeliveryID[:8] + "_" + svc }
		return []subscriptions.Service{
			{ServiceID: "svc_docs", BuildJobID: id("docs"), ImageTag: "ghcr.io/acme/u1--docs:" + k.CommitSHA[:12], WatchPaths: []string{"docs/**"}},
			{ServiceID: "svc_broken", BuildJobID: id("broken"), ImageTag: "ghcr.io/Acme/Broken"},
			{ServiceID: "svc_web", BuildJobID: id("web"), ImageTag: "ghcr.io/acme/u1--web:" + k.CommitSHA[:12], RootDirectory: "apps/web"},
		}
	})
	h := start(t, options{source: src, webhookBudget: 2 * time.Second, callbackTimeout: 1500 * time.Millisecond})
	h.sink.AlwaysAnswer(http.StatusServiceUnavailable)

	r := h.deliver("push", "5c8a21e0-0000-4000-8000-000000000002", pushTo(commitA, webhooktest.Commit{Message: "x", Modified: []string{"apps/web/a.ts"}}))
	if r.Code != http.StatusAccepted {
		t.Fatalf("answer %d: %s", r.Code, r.Body)
	}
	if b := buildsByService(t, r)["svc_web"]; b.Status != "queued" {
		t.Errorf("web = %+v", b)
	}
	if ids := buildIDs(h.jobs()); len(ids) != 1 || ids[0] != "bj_5c8a21e0_web" {
		t.Errorf("jobs = %v", ids)
	}
}
