package relay_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/alternatefutures/af-builder/functions/dispatch/relay"
)

type receiver struct {
	mu      sync.Mutex
	headers []http.Header
	bodies  []string
	codes   []int // answered in turn; 200 after
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.headers = append(rc.headers, r.Header.Clone())
	rc.bodies = append(rc.bodies, string(b))
	code := http.StatusOK
	if len(rc.codes) > 0 {
		code, rc.codes = rc.codes[0], rc.codes[1:]
	}
	rc.mu.Unlock()
	if code == http.StatusFound {
		http.Redirect(w, r, "/elsewhere", code)
		return
	}
	w.WriteHeader(code)
}

func newRelay(t *testing.T, url string) *relay.Relay {
	t.Helper()
	r, err := relay.New(relay.Config{URL: url, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func githubHeader() http.Header {
	h := http.Header{}
	h.Set("X-GitHub-Event", "installation")
	h.Set("X-GitHub-Delivery", "d-1")
	h.Set("X-GitHub-Hook-ID", "7")
	h.Set("X-Hub-Signature-256", "sha256=abc")
	h.Set("User-Agent", "GitHub-Hookshot/1")
	h.Set("Content-Type", "application/json")
	// Added on the way in; not GitHub's, not relayed.
	h.Set("Authorization", "Bearer something")
	h.Set("X-Forwarded-For", "140.82.115.1")
	h.Set("Cookie", "a=b")
	return h
}

func TestForwardSendsTheBodyWithGitHubsHeadersOnly(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	r := newRelay(t, srv.URL+"/hook")
	r.Forward(githubHeader(), []byte(`{"action":"created"}`))
	r.Wait()
	if len(rc.bodies) != 1 || rc.bodies[0] != `{"action":"created"}` {
		t.Fatalf("bodies %q", rc.bodies)
	}
	h := rc.headers[0]
	for _, k := range []string{"X-GitHub-Event", "X-GitHub-Delivery", "X-GitHub-Hook-ID", "X-Hub-Signature-256", "User-Agent", "Content-Type"} {
		if h.Get(k) != githubHeader().Get(k) {
			t.Errorf("%s = %q, want %q", k, h.Get(k), githubHeader().Get(k))
		}
	}
	for _, k := range []string{"Authorization", "X-Forwarded-For", "Cookie"} {
		if h.Get(k) != "" {
			t.Errorf("%s was relayed", k)
		}
	}
	if s := r.Stats(); s.Sent != 1 || s.Failed != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestAReceiverRestartingGetsOneRetry(t *testing.T) {
	rc := &receiver{codes: []int{http.StatusServiceUnavailable}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	r := newRelay(t, srv.URL)
	r.Forward(githubHeader(), []byte(`{}`))
	r.Wait()
	if len(rc.bodies) != 2 || r.Stats().Sent != 1 {
		t.Errorf("%d attempts, stats %+v; want 2 attempts, sent", len(rc.bodies), r.Stats())
	}
}

func TestRefusalsAndRedirectsCountAsFailures(t *testing.T) {
	rc := &receiver{codes: []int{http.StatusUnauthorized, http.StatusFound}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	r := newRelay(t, srv.URL)
	r.Forward(githubHeader(), []byte(`{}`))
	r.Wait()
	r.Forward(githubHeader(), []byte(`{}`))
	r.Wait()
	if len(rc.bodies) != 2 {
		t.Errorf("%d requests; a 401 is not retried and a redirect not followed", len(rc.bodies))
	}
	if s := r.Stats(); s.Failed != 2 || s.Sent != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestWantsEveryEventButPushesUnlessAsked(t *testing.T) {
	r := newRelay(t, "https://api.example/hook")
	if !r.Wants("installation") || !r.Wants("ping") || r.Wants("push") {
		t.Error("default: every event but push")
	}
	p, _ := relay.New(relay.Config{URL: "https://api.example/hook", Timeout: time.Second, Pushes: true})
	if !p.Wants("push") {
		t.Error("RELAY_PUSHES: pushes too")
	}
	var none *relay.Relay
	if none.Wants("installation") {
		t.Error("no relay wants nothing")
	}
}

func TestPlainHTTPOnlyToLoopbackOrListedHosts(t *testing.T) {
	if _, err := relay.New(relay.Config{URL: "http://service-cloud-api:4000/hook", Timeout: time.Second}); err == nil {
		t.Error("plain http to an unlisted host accepted")
	}
}
