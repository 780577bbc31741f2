// Package webhooktest makes GitHub webhook deliveries for tests: push
// payloads in the shape GitHub documents (its own example, with the fields a
// test varies filled in) and signed requests.
package webhooktest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// The repository of GitHub's example payload, which every dispatch test
// pushes to, and two commits of it.
const (
	InstallationID = 2311213
	Owner          = "Codertocat"
	Repo           = "Hello-World"
	CommitA        = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
	CommitB        = "7638417db6d59f3c431d3e1f261cc637155684cd"
)

//go:embed testdata/push.json
var pushTemplate []byte

// Commit is one entry of a push's commits list.
type Commit struct {
	ID                       string
	Message                  string
	Added, Modified, Removed []string
}

// Push describes a push event.
type Push struct {
	InstallationID int64
	Owner, Repo    string
	// Ref is the full ref; refs/heads/main when empty.
	Ref     string
	Before  string
	After   string
	Created bool
	Deleted bool
	Forced  bool
	Commits []Commit
	// PushedAt is repository.pushed_at; the template's value when zero.
	PushedAt time.Time
}

// Payload renders the push as GitHub would send it. The last commit is the
// head commit; a deleted ref has none.
func (p Push) Payload() []byte {
	var doc map[string]any
	if err := json.Unmarshal(pushTemplate, &doc); err != nil {
		panic(err)
	}
	if p.Ref == "" {
		p.Ref = "refs/heads/main"
	}
	if p.Before == "" {
		p.Before = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
	}
	repo := doc["repository"].(map[string]any)
	owner := repo["owner"].(map[string]any)
	owner["name"], owner["login"] = p.Owner, p.Owner
	repo["name"], repo["full_name"] = p.Repo, p.Owner+"/"+p.Repo
	repo["html_url"] = "https://github.com/" + p.Owner + "/" + p.Repo
	repo["clone_url"] = "https://github.com/" + p.Owner + "/" + p.Repo + ".git"
	if !p.PushedAt.IsZero() {
		repo["pushed_at"] = p.PushedAt.Unix()
	}
	doc["installation"].(map[string]any)["id"] = p.InstallationID
	doc["ref"], doc["before"], doc["after"] = p.Ref, p.Before, p.After
	doc["created"], doc["deleted"], doc["forced"] = p.Created, p.Deleted, p.Forced
	doc["compare"] = fmt.Sprintf("https://github.com/%s/%s/compare/%.12s...%.12s", p.Owner, p.Repo, p.Before, p.After)

	commits := []any{}
	for i, c := range p.Commits {
		id := c.ID
		if id == "" {
			id = p.After
			if i < len(p.Commits)-1 {
				id = fmt.Sprintf("%040x", i+1)
			}
		}
		commits = append(commits, commitJSON(p, id, c))
	}
	doc["commits"] = commits
	doc["head_commit"] = nil
	if len(commits) > 0 {
		doc["head_commit"] = commits[len(commits)-1]
	}
	out, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return out
}

func commitJSON(p Push, id string, c Commit) map[string]any {
	list := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	person := map[string]any{
		"name":     "Codertocat",
		"email":    "21031067+Codertocat@users.noreply.github.com",
		"username": "Codertocat",
	}
	return map[string]any{
		"id":        id,
		"tree_id":   strings.Repeat("f", 40),
		"distinct":  true,
		"message":   c.Message,
		"timestamp": time.Date(2019, 5, 15, 15, 20, 41, 0, time.UTC).Format(time.RFC3339),
		"url":       "https://github.com/" + p.Owner + "/" + p.Repo + "/commit/" + id,
		"author":    person,
		"committer": person,
		"added":     list(c.Added),
		"removed":   list(c.Removed),
		"modified":  list(c.Modified),
	}
}

// Ping is a ping event's body.
func Ping(hookID int64) []byte {
	b, _ := json.Marshal(map[string]any{
		"zen":     "Design for failure.",
		"hook_id": hookID,
		"hook":    map[string]any{"type": "App", "id": hookID, "active": true, "events": []string{"push"}},
	})
	return b
}

// Signature is the X-Hub-Signature-256 value GitHub would send.
func Signature(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Request builds a delivery as GitHub sends it. An empty secret leaves the
// signature off.
func Request(target, event, deliveryID string, body, secret []byte) *http.Request {
	r, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("User-Agent", "GitHub-Hookshot/7a9c5e1")
	r.Header.Set("X-GitHub-Event", event)
	r.Header.Set("X-GitHub-Delivery", deliveryID)
	r.Header.Set("X-GitHub-Hook-ID", "292430182")
	r.Header.Set("X-GitHub-Hook-Installation-Target-Type", "integration")
	if len(secret) > 0 {
		r.Header.Set("X-Hub-Signature-256", Signature(secret, body))
	}
	return r
}
