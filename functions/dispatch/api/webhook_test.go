package api_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/alternatefutures/af-builder/functions/dispatch/webhook/webhooktest"
)

func pushTo(after string, commits ...webhooktest.Commit) []byte {
	return pushedAt(time.Now(), after, commits...)
}

// pushedAt is a push GitHub recorded at t (repository.pushed_at).
func pushedAt(t time.Time, after string, commits ...webhooktest.Commit) []byte {
	return webhooktest.Push{InstallationID: installationID, Owner: owner, Repo: repo, After: after, Commits: commits, PushedAt: t}.Payload()
}

func TestGoodSignatureStartsTheBuildsOfTheServicesTheChangeTouches(t *testing.T) {
	t.Parallel()
	h := start(t, options{})
	body := pushTo(commitA, webhooktest.Commit{Message: "Landing page", Modified: []string{"apps/web/src/page.tsx", "README.md"}})

	r := h.deliver("push", "delivery-1", body)
	if r.Code != http.StatusAccepted {
		t.Fatalf("answer %d: %s", r.Code, r.Body)
	}
	builds := buildsByService(t, r)
	web, docs := builds["web"], builds["docs"]
	if web.Status != "queued" || web.JobName == "" || web.Namespace != h.ns {
		t.Errorf("web = %+v", web)
	}
	if docs.Status != "skipped" || !strings.Contains(docs.Reason, "watch paths") {
		t.Errorf("docs = %+v: no docs file changed, so no docs build", docs)
	}

	jobs := h.jobs()
	if len(jobs) != 1 || jobs[0].Name != web.JobName {
		t.Fatalf("jobs = %v, want only web's", buildIDs(jobs))
	}
	env := builderEnv(&jobs[0])
	if env["REPO_REF"] != commitA || env["ROOT_DIRECTORY"] != "apps/web" ||
		env["IMAGE_TAG"] != "ghcr.io/acme/u1--codertocat-hello-world-web:"+commitA[:12] ||
		env["REPO_SOURCE_URL"] != "https://github.com/"+owner+"/"+repo ||
		env["CALLBACK_URL"] != h.sink.URL() {
		t.Errorf("builder env = %v", env)
	}
	if jobs[0].Labels[kubeLabelTrigger] != "push" || jobs[0].Annotations[kubeLabelService] != "web" || jobs[0].Annotations[kubeLabelBranch] != "main" {
		t.Errorf("job metadata = %v %v", jobs[0].Labels, jobs[0].Annotations)
	}

	// The clone credential is a token GitHub minted for this repository
	// alone, with contents: read.
	issued := h.gh.Issued()
	if len(issued) != 1 || issued[0].Repositories[0] != repo || issued[0].Permissions["contents"] != "read" {
		t.Fatalf("GitHub issued %+v", issued)
	}
	sec := h.secret(jobs[0].Name)
	if sec == nil {
		t.Fatal("no Secret for the build")
	}
	wantClone := "https://x-access-token:" + issued[0].Token + "@github.com/" + owner + "/" + repo + ".git"
	if got := string(sec.Data["REPO_CLONE_URL"]); got != wantClone {
		t.Errorf("REPO_CLONE_URL = %q, want %q", got, wantClone)
	}
	if string(sec.Data["GHCR_TOKEN"]) != registryToken || len(sec.Data["CALLBACK_TOKEN"]) == 0 {
		t.Error("the Secret lacks the registry or callback credentials")
	}
}

func TestWatchPathsHitBuildsTheWatchingService(t *testing.T) {
	t.Parallel()
	h := start(t, options{})
	r := h.deliver("push", "delivery-docs", pushTo(commitA, webhooktest.Commit{Message: "Docs", Modified: []string{"docs/guide/intro.md"}}))
	if r.Code != http.StatusAccepted {
		t.Fatalf("answer %d: %s", r.Code, r.Body)
	}
	builds := buildsByService(t, r)
	if builds["docs"].Status != "queued" {
		t.Errorf("docs = %+v", builds["docs"])
	}
	if builds["web"].Status != "skipped" || !strings.Contains(builds["web"].Reason, "root directory apps/web") {
		t.Errorf("web = %+v: nothing under apps/web changed", builds["web"])
	}
	if ids := buildIDs(h.jobs()); len(ids) != 1 || ids[0] != builds["docs"].BuildJobID {
		t.Errorf("jobs = %v", ids)
	}
}

func TestWatchPathsMissBuildsNothing(t *testing.T) {
	t.Parallel()
	h := start(t, options{})
	r := h.deliver("push", "delivery-miss", pushTo(commitA, webhooktest.Commit{Message: "CI", Modified: []string{".github/workflows/ci.yml"}}))
	if r.Code != http.StatusAccepted {
		t.Fatalf("answer %d: %s", r.Code, r.Body)
	}
	for svc, b := range buildsByService(t, r) {
		if b.Status != "skipped" {
			t.Errorf("%s = %+v", svc, b)
		}
	}
	if n := len(h.jobs()); n != 0 {
		t.Errorf("%d jobs created", n)
	}
	if n := len(h.gh.Issued()); n != 0 {
		t.Errorf("%d installation tokens minted for a push that builds nothing", n)
	}
}

func TestRefusedDeliveriesTouchNothing(t *testing.T) {
	t.Parallel()
	h := start(t, options{maxWebhookBytes: 8 << 10})
	body := pushTo(commitA, webhooktest.Commit{Message: "x", Modified: []string{"apps/web/a"}})
	huge := pushTo(commitA, webhooktest.Commit{Message: strings.Repeat("long message ", 1000), Modified: []string{"apps/web/a"}})

	badSig := webhooktest.Request(h.url+"/webhooks/github", "push", "d-bad", body, []byte("not-the-secret"))
	noSig := webhooktest.Request(h.url+"/webhooks/github", "push", "d-none", body, nil)
	tampered := webhooktest.Request(h.url+"/webhooks/github", "push", "d-tampered", body, webhookSecret)
	tampered.Body = ioNopCloser(bytes.Replace(body, []byte(commitA), []byte(commitB), 1))
	oversize := webhooktest.Request(h.url+"/webhooks/github", "push", "d-huge", huge, webhookSecret)

	for name, tc := range map[string]struct {
		req  *http.Request
		want int
	}{
		"bad signature":     {badSig, http.StatusUnauthorized},
		"missing signature": {noSig, http.StatusUnauthorized},
		"tampered body":     {tampered, http.StatusUnauthorized},
		"oversize body":     {oversize, http.StatusRequestEntityTooLarge},
	} {
		if r := h.do(tc.req); r.Code != tc.want {
			t.Errorf("%s: answer %d %s, want %d", name, r.Code, r.Body, tc.want)
		}
	}
	if n := len(h.jobs()); n != 0 {
		t.Errorf("%d jobs created by refused deliveries", n)
	}
	if n := len(h.gh.Issued()) + len(h.gh.Rejected()); n != 0 {
		t.Errorf("GitHub was called %d times for refused deliveries", n)
	}
}

func TestPingAndOtherEventsAreAnsweredWithoutBuilding(t *testing.T) {
	t.Parallel()
	h := start(t, options{})
	if r := h.deliver("ping", "d-ping", webhooktest.Ping(292430182)); r.Code != http.StatusOK || r.json(t)["status"] != "pong" {
		t.Errorf("ping: %d %s", r.Code, r.Body)
	}
	r := h.deliver("installation_repositories", "d-inst", []byte(`{"action":"added","installation":{"id":1}}`))
	if r.Code/100 != 2 || r.json(t)["status"] != "ignored" {
		t.Errorf("other event: %d %s", r.Code, r.Body)
	}
	if n := len(h.jobs()); n != 0 {
		t.Errorf("%d jobs", n)
	}
}

func TestPushesGitHubWouldNotBuildAreSkipped(t *testing.T) {
	t.Parallel()
	h := start(t, options{})
	tag := webhooktest.Push{InstallationID: installationID, Owner: owner, Repo: repo, Ref: "refs/tags/v1.2.0", After: commitA,
		Commits: []webhooktest.Commit{{Message: "release", Modified: []string{"apps/web/a"}}}}
	del := webhooktest.Push{InstallationID: installationID, Owner: owner, Repo: repo, Ref: "refs/heads/main", Deleted: true,
		After: "0000000000000000000000000000000000000000"}
	for name, tc := range map[string]struct {
		body   []byte
		reason string
	}{
		"tag push":        {tag.Payload(), "tag push"},
		"branch deletion": {del.Payload(), "deleted"},
		"skip directive":  {pushTo(commitA, webhooktest.Commit{Message: "wip [skip ci]", Modified: []string{"apps/web/a"}}), "[skip ci]"},
		"skip trailer":    {pushTo(commitA, webhooktest.Commit{Message: "wip\n\n\nskip-checks: true", Modified: []string{"apps/web/a"}}), "skip-checks"},
	} {
		r := h.deliver("push", "d-"+strings.ReplaceAll(name, " ", "-"), tc.body)
		if r.Code != http.StatusOK || r.json(t)["status"] != "skipped" || !strings.Contains(r.json(t)["reason"].(string), tc.reason) {
			t.Errorf("%s: answer %d %s", name, r.Code, r.Body)
		}
	}
	if n := len(h.jobs()); n != 0 {
		t.Errorf("%d jobs", n)
	}
	if n := len(h.gh.Issued()); n != 0 {
		t.Errorf("%d tokens minted", n)
	}
}

func TestRedeliveryCreatesNothingNewAndAnswersTheSame(t *testing.T) {
	t.Parallel()
	h := start(t, options{})
	body := pushTo(commitA, webhooktest.Commit{Message: "x", Modified: []string{"apps/web/a", "docs/b.md"}})

	first := h.deliver("push", "72d3162e-cc78-11e3-81ab-4c9367dc0958", body)
	again := h.deliver("push", "72d3162e-cc78-11e3-81ab-4c9367dc0958", body)
	if first.Code != http.StatusAccepted || again.Code != first.Code || !bytes.Equal(first.Body, again.Body) {
		t.Fatalf("first %d %s\nagain %d %s", first.Code, first.Body, again.Code, again.Body)
	}
	jobs := h.jobs()
	if len(jobs) != 2 {
		t.Fatalf("jobs = %v, want one per service", buildIDs(jobs))
	}
	// Supersede must not have treated the redelivery as a newer push.
	for _, d := range h.sink.Received() {
		t.Errorf("unexpected callback %s %s", d.BuildJobID, d.Status)
	}
}

func TestUntrackedBranchBuildsNothing(t *testing.T) {
	t.Parallel()
	h := start(t, options{})
	p := webhooktest.Push{InstallationID: installationID, Owner: owner, Repo: repo, Ref: "refs/heads/feature/x", After: commitA,
		Commits: []webhooktest.Commit{{Message: "x", Modified: []string{"apps/web/a"}}}}
	r := h.deliver("push", "d-feature", p.Payload())
	if r.Code != http.StatusOK || r.json(t)["status"] != "skipped" {
		t.Errorf("answer %d %s", r.Code, r.Body)
	}
}
