package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/alternatefutures/af-builder/functions/dispatch/webhook"
	"github.com/alternatefutures/af-builder/functions/dispatch/webhook/webhooktest"
	"github.com/alternatefutures/af-builder/shared/validate"
)

var fuzzSecret = []byte("fuzz-webhook-secret")

// A delivery is accepted exactly when its signature is the HMAC of its body:
// the oracle is the HMAC computed here.
func FuzzReadSignature(f *testing.F) {
	body := []byte(`{"zen":"x"}`)
	f.Add(body, webhooktest.Signature(fuzzSecret, body), "application/json")
	f.Add(body, strings.ToUpper(webhooktest.Signature(fuzzSecret, body)), "application/json")
	f.Add([]byte("payload=%7B%7D"), webhooktest.Signature(fuzzSecret, []byte("payload=%7B%7D")), "application/x-www-form-urlencoded")
	f.Add(body, "sha1=00", "")
	f.Add(body, "sha256=", "text/plain; charset=\"")
	f.Fuzz(func(t *testing.T, body []byte, sig, contentType string) {
		r := webhooktest.Request("http://dispatch/webhook", "push", "d-1", body, nil)
		r.Header.Set(webhook.SignatureHeader, sig)
		r.Header.Set("Content-Type", contentType)
		_, err := webhook.Read(httptest.NewRecorder(), r, fuzzSecret, 1<<20)
		m := hmac.New(sha256.New, fuzzSecret)
		m.Write(body)
		hexSig, ok := strings.CutPrefix(sig, "sha256=")
		got, decErr := hex.DecodeString(hexSig)
		valid := ok && decErr == nil && hmac.Equal(got, m.Sum(nil))
		if !valid && err == nil {
			t.Fatalf("accepted signature %q for body %q", sig, body)
		}
		if valid && err == webhook.ErrSignature {
			t.Fatalf("refused the right signature %q", sig)
		}
	})
}

// A push ParsePush accepts names a valid repository, a branch git accepts or
// a tag, and (unless deleted) a full commit SHA.
func FuzzParsePush(f *testing.F) {
	if b, err := os.ReadFile("webhooktest/testdata/push.json"); err == nil {
		f.Add(b)
	}
	f.Add(webhooktest.Push{InstallationID: 1, Owner: "o", Repo: "r", After: strings.Repeat("a", 40)}.Payload())
	f.Add([]byte(`{"ref":"refs/heads/a..b","after":"` + strings.Repeat("b", 40) + `","installation":{"id":1},"repository":{"name":"r","owner":{"login":"o"}}}`))
	f.Add([]byte(`{"ref":"refs/heads/x","deleted":true,"installation":{"id":1},"repository":{"name":"r","owner":{"name":"o"}},"commits":[{"added":["a"]}]}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		p, err := webhook.ParsePush("d-1", payload)
		if err != nil {
			return
		}
		if validate.RepoOwner(p.Owner) != nil || validate.RepoName(p.Repo) != nil || p.InstallationID == 0 {
			t.Fatalf("accepted repository %q/%q, installation %d", p.Owner, p.Repo, p.InstallationID)
		}
		if p.Tag == (p.Branch != "") {
			t.Fatalf("ref %q: branch %q, tag %v", p.Ref, p.Branch, p.Tag)
		}
		if p.Branch != "" && validate.BranchName(p.Branch) != nil {
			t.Fatalf("accepted branch %q, which is not a valid branch name", p.Branch)
		}
		if !p.Deleted && !validate.IsCommitSHA(p.After) {
			t.Fatalf("accepted after %q", p.After)
		}
	})
}
