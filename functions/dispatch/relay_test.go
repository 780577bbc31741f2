package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/alternatefutures/af-builder/functions/dispatch/webhook/webhooktest"
)

// platformHook is a real HTTP receiver standing where service-cloud-api's
// own webhook handler would: it verifies X-Hub-Signature-256 with the App's
// webhook secret over the raw body, as that handler does, and keeps what it
// received.
type platformHook struct {
	*httptest.Server
	mu       sync.Mutex
	got      []relayed
	delay    time.Duration
	received chan struct{}
}

type relayed struct {
	header   http.Header
	body     []byte
	verified bool
}

func newPlatformHook(t *testing.T) *platformHook {
	p := &platformHook{received: make(chan struct{}, 16)}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		want := webhooktest.Signature([]byte(webhookSecret), body)
		p.mu.Lock()
		p.got = append(p.got, relayed{r.Header.Clone(), body, hmac.Equal([]byte(r.Header.Get("X-Hub-Signature-256")), []byte(want))})
		delay := p.delay
		p.mu.Unlock()
		time.Sleep(delay)
		w.WriteHeader(http.StatusOK)
		p.received <- struct{}{}
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *platformHook) deliveries() []relayed {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]relayed(nil), p.got...)
}

func deliver(t *testing.T, base, event, id string, body []byte) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	resp, err := http.DefaultClient.Do(webhooktest.Request(base+"/webhooks/github", event, id, body, []byte(webhookSecret)))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, time.Since(start)
}

func health(t *testing.T, base string) (sent, failed int64) {
	t.Helper()
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h struct {
		Relay struct{ Sent, Failed int64 }
	}
	json.NewDecoder(resp.Body).Decode(&h)
	return h.Relay.Sent, h.Relay.Failed
}

func installationEvent(action string) []byte {
	b, _ := json.Marshal(map[string]any{
		"action":       action,
		"installation": map[string]any{"id": installationID, "account": map[string]any{"login": owner}},
		"sender":       map[string]any{"login": owner},
	})
	return b
}

// One GitHub App webhook URL for both: dispatch builds the pushes and
// relays the installation events, byte for byte with GitHub's headers and
// signature, to the platform's own handler, which verifies them as if GitHub
// had sent them. Pushes are not relayed unless asked for.
func TestServeRelaysEventsItDoesNotBuildFromUnchanged(t *testing.T) {
	bin := bootstrap(t)
	w := newWorld(t)
	hook := newPlatformHook(t)
	server, base := w.serve(t, bin, "RELAY_URL="+hook.URL+"/webhooks/github", "RELAY_TIMEOUT=2s")

	body := installationEvent("created")
	if code, _ := deliver(t, base, "installation", "d-inst-1", body); code != http.StatusAccepted {
		t.Fatalf("installation event answered %d", code)
	}
	select {
	case <-hook.received:
	case <-time.After(10 * time.Second):
		t.Fatalf("the installation event was not relayed:\n%s", server.Logs())
	}
	got := hook.deliveries()
	if len(got) != 1 {
		t.Fatalf("%d relayed deliveries, want 1", len(got))
	}
	d := got[0]
	if !bytes.Equal(d.body, body) || !d.verified {
		t.Errorf("relayed body changed or its signature does not verify (verified=%v)", d.verified)
	}
	for _, h := range []string{"X-GitHub-Event", "X-GitHub-Delivery", "X-GitHub-Hook-ID", "X-GitHub-Hook-Installation-Target-Type", "User-Agent", "Content-Type"} {
		want := webhooktest.Request("http://x", "installation", "d-inst-1", body, []byte(webhookSecret)).Header.Get(h)
		if d.header.Get(h) != want {
			t.Errorf("relayed %s = %q, want GitHub's %q", h, d.header.Get(h), want)
		}
	}

	// A push is built, not relayed.
	push := webhooktest.Push{InstallationID: installationID, Owner: owner, Repo: repo, After: commit,
		Commits: []webhooktest.Commit{{Message: "x", Modified: []string{"apps/web/page.js"}}}}.Payload()
	if code, _ := deliver(t, base, "push", "d-push-1", push); code != http.StatusAccepted {
		t.Fatalf("push answered %d:\n%s", code, server.Logs())
	}
	jobs, err := w.kube.Kube.BatchV1().Jobs(w.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil || len(jobs.Items) != 1 {
		t.Fatalf("jobs after the push: %v, %v", len(jobs.Items), err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(hook.deliveries()); n != 1 {
		t.Errorf("%d deliveries relayed after the push, want still 1 (RELAY_PUSHES is off)", n)
	}
	if sent, failed := health(t, base); sent != 1 || failed != 0 {
		t.Errorf("relay counters sent=%d failed=%d, want 1, 0", sent, failed)
	}
	if strings.Contains(server.Logs(), webhookSecret) {
		t.Error("the webhook secret is in dispatch's log")
	}
}

// A slow or absent receiver holds up nothing and fails nothing: GitHub's
// answer comes at once, pushes still build, and each failure is logged and
// counted.
func TestRelayFailuresAreCountedAndNeverHoldUpOrFailAPush(t *testing.T) {
	bin := bootstrap(t)
	w := newWorld(t)
	hook := newPlatformHook(t)
	hook.delay = 3 * time.Second // beyond RELAY_TIMEOUT
	server, base := w.serve(t, bin, "RELAY_URL="+hook.URL+"/hook", "RELAY_TIMEOUT=500ms", "RELAY_PUSHES=true")

	code, took := deliver(t, base, "installation", "d-slow-1", installationEvent("deleted"))
	if code != http.StatusAccepted || took > time.Second {
		t.Errorf("installation event answered %d after %v; want 202 without waiting for the relay", code, took)
	}
	hook.Close() // now nobody listens at all
	push := webhooktest.Push{InstallationID: installationID, Owner: owner, Repo: repo, After: commit,
		Commits: []webhooktest.Commit{{Message: "x", Modified: []string{"apps/web/page.js"}}}}.Payload()
	if code, _ := deliver(t, base, "push", "d-push-2", push); code != http.StatusAccepted {
		t.Fatalf("push answered %d with the relay down:\n%s", code, server.Logs())
	}
	jobs, err := w.kube.Kube.BatchV1().Jobs(w.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil || len(jobs.Items) != 1 {
		t.Fatalf("jobs after the push: %v, %v", len(jobs.Items), err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		sent, failed := health(t, base)
		if failed == 2 && sent == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay counters sent=%d failed=%d, want 0, 2\n%s", sent, failed, server.Logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := strings.Count(server.Logs(), "webhook relay failed"); n != 2 {
		t.Errorf("%d relay failures logged, want 2:\n%s", n, server.Logs())
	}
}
