// Package webhook reads GitHub App webhooks: the body under a size cap, the
// X-Hub-Signature-256 check over the raw bytes before anything parses them,
// and the push event reduced to what a build needs, with GitHub's own rules
// for when not to build.
package webhook

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/go-github/v88/github"

	"github.com/alternatefutures/af-builder/shared/validate"
)

// Headers GitHub sets on every delivery.
const (
	SignatureHeader = "X-Hub-Signature-256"
	EventHeader     = "X-GitHub-Event"
	DeliveryHeader  = "X-GitHub-Delivery"
)

// Errors Read returns; the handler maps them to 413, 401 and 400.
var (
	ErrTooLarge  = errors.New("webhook body exceeds the size limit")
	ErrSignature = errors.New("webhook signature missing or invalid")
	ErrMalformed = errors.New("webhook body malformed")
)

// Delivery is a verified webhook.
type Delivery struct {
	Event string
	ID    string
	// Payload is the JSON document (taken out of the form field when the
	// hook was configured as application/x-www-form-urlencoded).
	Payload []byte
}

// Read reads and verifies one delivery. The body is capped at max bytes
// before anything reads it, and the signature is checked over the raw bytes
// (in constant time, by go-github's ValidateSignature) before anything
// parses them. Only sha256 signatures count: the SHA-1 header is ignored.
func Read(w http.ResponseWriter, r *http.Request, secret []byte, max int64) (Delivery, error) {
	if r.ContentLength > max {
		return Delivery{}, ErrTooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return Delivery{}, ErrTooLarge
		}
		return Delivery{}, fmt.Errorf("read webhook body: %w", err)
	}
	sig := r.Header.Get(SignatureHeader)
	if len(secret) == 0 || !strings.HasPrefix(sig, "sha256=") {
		return Delivery{}, ErrSignature
	}
	if err := github.ValidateSignature(sig, body, secret); err != nil {
		return Delivery{}, ErrSignature
	}

	d := Delivery{Event: r.Header.Get(EventHeader), ID: r.Header.Get(DeliveryHeader), Payload: body}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/x-www-form-urlencoded" {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return Delivery{}, fmt.Errorf("%w: form body: %v", ErrMalformed, err)
		}
		d.Payload = []byte(form.Get("payload"))
	}
	if d.Event == "" {
		return Delivery{}, fmt.Errorf("%w: no %s header", ErrMalformed, EventHeader)
	}
	return d, nil
}

// Push is a push event, reduced to what deciding on and starting a build
// needs.
type Push struct {
	DeliveryID     string
	InstallationID int64
	Owner, Repo    string
	Ref            string
	// Branch is the pushed branch; empty for a tag.
	Branch  string
	Tag     bool
	Deleted bool
	// After is the commit the ref now points to.
	After       string
	HeadMessage string
	// Changed is every path added, modified or removed over the pushed
	// commits. ChangesKnown is false when those lists need not cover every
	// file that differs from the ref's previous head: no commits (a rewind),
	// a list at its cap, a new branch (no previous head), or a force push
	// (its commits start at the merge base, so files changed only by the
	// dropped commits are not listed). Path filters cannot rule a build out
	// then.
	Changed      []string
	ChangesKnown bool
	// DefaultBranch is the repository's default branch, whose layer cache a
	// new branch's first build starts from.
	DefaultBranch string
	// PushedAt is when GitHub recorded the push (repository.pushed_at, to
	// the second). Deliveries can arrive out of order or be redelivered
	// later; this, not arrival, says which push of a branch is newer.
	PushedAt time.Time
}

// maxListedCommits is how many commits GitHub puts in a push payload at
// most; a list that long may have been cut.
const maxListedCommits = 2048

// ParsePush decodes a push payload.
func ParsePush(deliveryID string, payload []byte) (Push, error) {
	ev, err := github.ParseWebHook("push", payload)
	if err != nil {
		return Push{}, fmt.Errorf("%w: push payload: %v", ErrMalformed, err)
	}
	pe := ev.(*github.PushEvent)
	p := Push{
		DeliveryID:     deliveryID,
		InstallationID: pe.GetInstallation().GetID(),
		Repo:           pe.GetRepo().GetName(),
		Ref:            pe.GetRef(),
		Deleted:        pe.GetDeleted(),
		After:          pe.GetAfter(),
		HeadMessage:    pe.GetHeadCommit().GetMessage(),
		PushedAt:       pe.GetRepo().GetPushedAt().Time,
	}
	p.DefaultBranch = pe.GetRepo().GetDefaultBranch()
	// Push payloads carry the owner as both name and login.
	if p.Owner = pe.GetRepo().GetOwner().GetLogin(); p.Owner == "" {
		p.Owner = pe.GetRepo().GetOwner().GetName()
	}
	switch {
	case p.InstallationID == 0:
		return p, fmt.Errorf("%w: no installation: not a GitHub App delivery", ErrMalformed)
	case validate.RepoOwner(p.Owner) != nil || validate.RepoName(p.Repo) != nil:
		return p, fmt.Errorf("%w: repository %q/%q", ErrMalformed, p.Owner, p.Repo)
	}
	if b, ok := strings.CutPrefix(p.Ref, "refs/heads/"); ok {
		p.Branch = b
	} else if strings.HasPrefix(p.Ref, "refs/tags/") {
		p.Tag = true
	} else {
		return p, fmt.Errorf("%w: ref %q is neither a branch nor a tag", ErrMalformed, p.Ref)
	}
	if !p.Deleted && !validate.IsCommitSHA(p.After) {
		return p, fmt.Errorf("%w: after %q is not a commit SHA", ErrMalformed, p.After)
	}

	seen := map[string]bool{}
	for _, c := range pe.Commits {
		for _, list := range [][]string{c.Added, c.Modified, c.Removed} {
			for _, f := range list {
				if !seen[f] {
					seen[f] = true
					p.Changed = append(p.Changed, f)
				}
			}
		}
	}
	p.ChangesKnown = len(pe.Commits) > 0 && len(pe.Commits) < maxListedCommits &&
		!pe.GetForced() && !pe.GetCreated() && strings.Trim(pe.GetBefore(), "0") != ""
	return p, nil
}

// SkipReason says why this push builds nothing for any service, or "".
func (p Push) SkipReason() string {
	switch {
	case p.Deleted:
		return "branch or tag deleted"
	case p.Tag:
		return "tag push"
	}
	if d, ok := SkipDirective(p.HeadMessage); ok {
		return "head commit says " + d
	}
	return ""
}

var skipMarkers = []string{"[skip ci]", "[ci skip]", "[no ci]", "[skip actions]", "[actions skip]"}

// SkipDirective finds the directives GitHub honours in a commit message: a
// bracketed marker anywhere, or a skip-checks: true trailer in the final
// paragraph.
func SkipDirective(message string) (string, bool) {
	lower := strings.ToLower(message)
	for _, m := range skipMarkers {
		if strings.Contains(lower, m) {
			return m, true
		}
	}
	msg := strings.TrimRight(strings.ReplaceAll(message, "\r\n", "\n"), "\n \t")
	last := msg
	if i := strings.LastIndex(msg, "\n\n"); i >= 0 {
		last = msg[i+2:]
	}
	for _, line := range strings.Split(last, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), "skip-checks") && strings.EqualFold(strings.TrimSpace(v), "true") {
			return "skip-checks: true", true
		}
	}
	return "", false
}
