package webhook_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/alternatefutures/af-builder/functions/dispatch/subscriptions"
	"github.com/alternatefutures/af-builder/functions/dispatch/webhook"
	"github.com/alternatefutures/af-builder/functions/dispatch/webhook/webhooktest"
)

var secret = []byte("webhook-secret-for-tests")

const sha = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"

func push(commits ...webhooktest.Commit) webhooktest.Push {
	return webhooktest.Push{InstallationID: 2311213, Owner: "Codertocat", Repo: "Hello-World", After: sha, Commits: commits}
}

func TestReadAcceptsAGoodSignatureAndRefusesOthers(t *testing.T) {
	body := push(webhooktest.Commit{Message: "x", Modified: []string{"README.md"}}).Payload()
	cases := map[string]struct {
		mutate func(r *http.Request)
		want   error
	}{
		"good":    {func(*http.Request) {}, nil},
		"missing": {func(r *http.Request) { r.Header.Del(webhook.SignatureHeader) }, webhook.ErrSignature},
		"wrong secret": {func(r *http.Request) {
			r.Header.Set(webhook.SignatureHeader, webhooktest.Signature([]byte("other"), body))
		}, webhook.ErrSignature},
		"sha1 only": {func(r *http.Request) {
			r.Header.Del(webhook.SignatureHeader)
			r.Header.Set("X-Hub-Signature", "sha1=00")
		}, webhook.ErrSignature},
		"not hex":     {func(r *http.Request) { r.Header.Set(webhook.SignatureHeader, "sha256=zz") }, webhook.ErrSignature},
		"sha1 in 256": {func(r *http.Request) { r.Header.Set(webhook.SignatureHeader, "sha1=00") }, webhook.ErrSignature},
		"one byte short": {func(r *http.Request) {
			r.Header.Set(webhook.SignatureHeader, webhooktest.Signature(secret, body[:len(body)-1]))
		}, webhook.ErrSignature},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := webhooktest.Request("/webhooks/github", "push", "d-1", body, secret)
			tc.mutate(r)
			d, err := webhook.Read(httptest.NewRecorder(), r, secret, 1<<20)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err == nil && (d.Event != "push" || d.ID != "d-1" || string(d.Payload) != string(body)) {
				t.Errorf("delivery = %+v", d)
			}
		})
	}
}

func TestReadCapsTheBodyBeforeVerifying(t *testing.T) {
	body := []byte(`{"zen":"` + strings.Repeat("a", 4096) + `"}`)
	for name, chunked := range map[string]bool{"with Content-Length": false, "chunked": true} {
		t.Run(name, func(t *testing.T) {
			r := webhooktest.Request("/webhooks/github", "ping", "d-1", body, secret)
			if chunked {
				r.ContentLength = -1
			}
			_, err := webhook.Read(httptest.NewRecorder(), r, secret, 1024)
			if !errors.Is(err, webhook.ErrTooLarge) {
				t.Fatalf("err = %v, want ErrTooLarge", err)
			}
		})
	}
}

func TestReadTakesThePayloadOutOfAFormBody(t *testing.T) {
	payload := webhooktest.Ping(1)
	body := []byte("payload=" + url.QueryEscape(string(payload)))
	r := webhooktest.Request("/webhooks/github", "ping", "d-1", body, secret)
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	d, err := webhook.Read(httptest.NewRecorder(), r, secret, 1<<20)
	if err != nil || string(d.Payload) != string(payload) {
		t.Fatalf("Read = %q, %v", d.Payload, err)
	}
}

func TestParsePushOnGitHubsPayloadShape(t *testing.T) {
	p := push(
		webhooktest.Commit{Message: "first", Added: []string{"apps/web/new.ts"}, Modified: []string{"README.md"}},
		webhooktest.Commit{Message: "Update README\n\nbody", Modified: []string{"README.md"}, Removed: []string{"old.txt"}},
	)
	got, err := webhook.ParsePush("d-1", p.Payload())
	if err != nil {
		t.Fatal(err)
	}
	if got.InstallationID != 2311213 || got.Owner != "Codertocat" || got.Repo != "Hello-World" ||
		got.Branch != "main" || got.Tag || got.Deleted || got.After != sha || got.DeliveryID != "d-1" ||
		got.HeadMessage != "Update README\n\nbody" || !got.ChangesKnown {
		t.Errorf("push = %+v", got)
	}
	if strings.Join(got.Changed, ",") != "apps/web/new.ts,README.md,old.txt" {
		t.Errorf("changed = %v (added, modified and removed over all commits, once each)", got.Changed)
	}
	if r := got.SkipReason(); r != "" {
		t.Errorf("skip reason = %q", r)
	}
}

func TestPushesThatBuildNothing(t *testing.T) {
	tag := push(webhooktest.Commit{Message: "v1"})
	tag.Ref = "refs/tags/v1.0.0"
	del := push()
	del.Deleted, del.After = true, "0000000000000000000000000000000000000000"
	for name, tc := range map[string]struct {
		push webhooktest.Push
		want string
	}{
		"tag push":        {tag, "tag push"},
		"branch deletion": {del, "branch or tag deleted"},
		"skip ci":         {push(webhooktest.Commit{Message: "docs: typo [skip ci]"}), "head commit says [skip ci]"},
		"ci skip":         {push(webhooktest.Commit{Message: "[CI SKIP] wip"}), "head commit says [ci skip]"},
		"no ci":           {push(webhooktest.Commit{Message: "wip [no ci]"}), "head commit says [no ci]"},
		"skip actions":    {push(webhooktest.Commit{Message: "wip [skip actions]"}), "head commit says [skip actions]"},
		"actions skip":    {push(webhooktest.Commit{Message: "wip [actions skip]"}), "head commit says [actions skip]"},
		"trailer":         {push(webhooktest.Commit{Message: "Fix\n\nExplain.\n\n\nskip-checks: true\n"}), "head commit says skip-checks: true"},
		"trailer compact": {push(webhooktest.Commit{Message: "Fix\n\nskip-checks:true"}), "head commit says skip-checks: true"},
	} {
		t.Run(name, func(t *testing.T) {
			p, err := webhook.ParsePush("d", tc.push.Payload())
			if err != nil {
				t.Fatal(err)
			}
			if got := p.SkipReason(); got != tc.want {
				t.Errorf("SkipReason = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestOnlyTheHeadCommitsDirectiveCounts(t *testing.T) {
	p, err := webhook.ParsePush("d", push(
		webhooktest.Commit{Message: "old [skip ci]"},
		webhooktest.Commit{Message: "real change"},
	).Payload())
	if err != nil {
		t.Fatal(err)
	}
	if r := p.SkipReason(); r != "" {
		t.Errorf("SkipReason = %q; an earlier commit's directive must not skip the push", r)
	}
	if _, ok := webhook.SkipDirective("mentions skip-checks: true in the subject only\n\nand a body"); ok {
		t.Error("a skip-checks mention outside the final paragraph counted as a trailer")
	}
}

func TestParsePushRefusesWhatIsNotABuildablePush(t *testing.T) {
	noInstall := push(webhooktest.Commit{Message: "x"})
	noInstall.InstallationID = 0
	badSHA := push(webhooktest.Commit{Message: "x"})
	badSHA.After = "main"
	for name, p := range map[string]webhooktest.Push{"no installation": noInstall, "after not a sha": badSHA} {
		if _, err := webhook.ParsePush("d", p.Payload()); !errors.Is(err, webhook.ErrMalformed) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if _, err := webhook.ParsePush("d", []byte(`{"ref":`)); !errors.Is(err, webhook.ErrMalformed) {
		t.Errorf("truncated JSON: err = %v", err)
	}
}

// A force push's commits are those after the merge base, not the difference
// from the ref's previous head: files changed only by the dropped commits
// are not listed. A new branch has no previous head at all. Either way the
// lists cannot rule a build out.
func TestForcedAndNewBranchPushesDoNotKnowEveryChange(t *testing.T) {
	docsOnly := webhooktest.Commit{Message: "amended", Modified: []string{"docs/a.md"}}
	forced := push(docsOnly)
	forced.Forced = true
	created := push(docsOnly)
	created.Created, created.Before = true, "0000000000000000000000000000000000000000"
	for name, tc := range map[string]struct {
		push  webhooktest.Push
		known bool
	}{
		"fast-forward": {push(docsOnly), true},
		"force push":   {forced, false},
		"new branch":   {created, false},
	} {
		p, err := webhook.ParsePush("d", tc.push.Payload())
		if err != nil {
			t.Fatal(err)
		}
		if p.ChangesKnown != tc.known {
			t.Errorf("%s: ChangesKnown = %v, want %v", name, p.ChangesKnown, tc.known)
		}
		if ok, _ := subscriptions.Touches(p.Changed, p.ChangesKnown, "apps/web", nil); ok != !tc.known {
			t.Errorf("%s: Touches(apps/web) = %v", name, ok)
		}
	}
}
