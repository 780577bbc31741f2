package callbacksink

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alternatefutures/af-builder/shared/token"
)

var secret = []byte("callback-secret")

func start(t *testing.T, opts Options) *Sink {
	t.Helper()
	if opts.Secret == nil {
		opts.Secret = secret
	}
	s, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func post(t *testing.T, s *Sink, tok string, body []byte) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL(), bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set(TokenHeader, tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func payload(t *testing.T, job, status string, extra map[string]any) []byte {
	t.Helper()
	m := map[string]any{"buildJobId": job, "status": status}
	for k, v := range extra {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestValidation(t *testing.T) {
	s := start(t, Options{Jobs: []string{"job-1"}})
	if !strings.HasSuffix(s.URL(), "/internal/build-callback") || !strings.HasPrefix(s.URL(), "http://127.0.0.1:") {
		t.Fatalf("URL = %s", s.URL())
	}
	now := time.Now()
	good := token.Mint(secret, "job-1", now)
	for _, tc := range []struct {
		name string
		tok  string
		body []byte
		want int
	}{
		{"not json", good, []byte("nope"), 400},
		{"json array", good, []byte(`[1]`), 400},
		{"trailing data", good, []byte(`{"buildJobId":"job-1","status":"RUNNING"} x`), 400},
		{"no job id", good, []byte(`{"status":"RUNNING"}`), 400},
		{"job id not string", good, []byte(`{"buildJobId":7,"status":"RUNNING"}`), 400},
		{"too big", good, payload(t, "job-1", "RUNNING", map[string]any{"logs": strings.Repeat("x", MaxBody)}), 400},
		{"no token", "", payload(t, "job-1", "RUNNING", nil), 401},
		{"other secret", token.Mint([]byte("other"), "job-1", now), payload(t, "job-1", "RUNNING", nil), 401},
		{"other job's token", token.Mint(secret, "job-2", now), payload(t, "job-1", "RUNNING", nil), 401},
		{"expired", token.Mint(secret, "job-1", now.Add(-5*time.Hour)), payload(t, "job-1", "RUNNING", nil), 401},
		{"unknown status", good, payload(t, "job-1", "DONE", nil), 400},
		{"missing status", good, []byte(`{"buildJobId":"job-1"}`), 400},
		{"unknown job", token.Mint(secret, "job-9", now), payload(t, "job-9", "RUNNING", nil), 404},
		{"ok", good, payload(t, "job-1", "RUNNING", map[string]any{"logs": "step 1"}), 200},
	} {
		if got := post(t, s, tc.tok, tc.body); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	rec := s.Received()
	if len(rec) != 14 {
		t.Fatalf("%d deliveries recorded", len(rec))
	}
	last := rec[len(rec)-1]
	if last.Seq != 14 || !last.Accepted() || last.Payload["logs"] != "step 1" || last.Header.Get(TokenHeader) != good || last.Reason != "" {
		t.Errorf("last delivery %+v", last)
	}
	if r := rec[6]; r.Answered != 401 || !strings.Contains(r.Reason, "token") {
		t.Errorf("401 delivery: %+v", r)
	}
	if s.State("job-1") != StatusRunning {
		t.Errorf("State = %q", s.State("job-1"))
	}
	s.AddJob("job-9")
	if got := post(t, s, token.Mint(secret, "job-9", now), payload(t, "job-9", "RUNNING", nil)); got != 200 {
		t.Errorf("after AddJob: %d", got)
	}
	if post, _ := http.Get(s.URL()); post.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", post.StatusCode)
	}
}

func TestFirstTerminalWins(t *testing.T) {
	s := start(t, Options{})
	tok := s.Token("b1")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var got Delivery
	var werr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		got, werr = s.WaitTerminal(ctx, "b1")
	}()

	for _, st := range []string{"RUNNING", "RUNNING"} {
		if c := post(t, s, tok, payload(t, "b1", st, nil)); c != 200 {
			t.Fatalf("%s: %d", st, c)
		}
	}
	if _, ok := s.Terminal("b1"); ok {
		t.Fatal("terminal before any terminal status")
	}
	for _, st := range []string{"SUCCEEDED", "FAILED", "RUNNING", "CANCELED"} {
		if c := post(t, s, tok, payload(t, "b1", st, map[string]any{"imageTag": "x:1", "detectedPort": 8080})); c != 200 {
			t.Errorf("%s: %d, want 200", st, c)
		}
	}
	wg.Wait()
	if werr != nil {
		t.Fatal(werr)
	}
	if got.Status != "SUCCEEDED" || !got.Final || got.Payload["detectedPort"] != float64(8080) {
		t.Errorf("WaitTerminal = %+v", got)
	}
	if term, ok := s.Terminal("b1"); !ok || term.Seq != got.Seq {
		t.Errorf("Terminal = %+v, %v", term, ok)
	}
	if s.State("b1") != "SUCCEEDED" {
		t.Errorf("State = %s", s.State("b1"))
	}
	ds := s.Deliveries("b1")
	if len(ds) != 6 {
		t.Fatalf("%d deliveries", len(ds))
	}
	finals := 0
	for _, d := range ds {
		if d.Final {
			finals++
		}
	}
	if finals != 1 {
		t.Errorf("%d final deliveries", finals)
	}
}

func TestScript(t *testing.T) {
	s := start(t, Options{})
	tok := token.Mint(secret, "j", time.Now())
	s.Script("j", 503, 429)
	s.Script("other", 500)
	want := []int{503, 429, 200}
	for i, w := range want {
		if c := post(t, s, tok, payload(t, "j", "SUCCEEDED", nil)); c != w {
			t.Errorf("request %d: %d, want %d", i, c, w)
		}
	}
	ds := s.Deliveries("j")
	if !ds[0].Scripted || !ds[1].Scripted || ds[2].Scripted || !ds[2].Final {
		t.Errorf("deliveries %+v", ds)
	}
	// A scripted answer comes before any check, even of the token.
	s.Script("j", 502)
	if c := post(t, s, "garbage", payload(t, "j", "RUNNING", nil)); c != 502 {
		t.Errorf("scripted with a bad token: %d", c)
	}

	s.AlwaysAnswer(500)
	if c := post(t, s, tok, payload(t, "j", "RUNNING", nil)); c != 500 {
		t.Errorf("AlwaysAnswer: %d", c)
	}
	s.AlwaysAnswer(0)
	if c := post(t, s, tok, payload(t, "j", "RUNNING", nil)); c != 200 {
		t.Errorf("after AlwaysAnswer(0): %d", c)
	}
	if d, _ := s.Terminal("j"); d.Status != "SUCCEEDED" {
		t.Errorf("terminal %+v", d)
	}
}

func TestWaitTerminalTimeout(t *testing.T) {
	s := start(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.WaitTerminal(ctx, "never"); err == nil {
		t.Fatal("WaitTerminal returned without a delivery")
	}
}

func TestDelay(t *testing.T) {
	s := start(t, Options{})
	s.SetDelay(300 * time.Millisecond)
	c := &http.Client{Timeout: 50 * time.Millisecond}
	req, _ := http.NewRequest(http.MethodPost, s.URL(), bytes.NewReader(payload(t, "d", "RUNNING", nil)))
	if _, err := c.Do(req); err == nil {
		t.Fatal("request did not time out")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.WaitFor(ctx, func(r []Delivery) bool { return len(r) == 1 }); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrent(t *testing.T) {
	s := start(t, Options{})
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			job := "c"
			body, _ := json.Marshal(map[string]string{"buildJobId": job, "status": "RUNNING"})
			req, _ := http.NewRequest(http.MethodPost, s.URL(), bytes.NewReader(body))
			req.Header.Set(TokenHeader, token.Mint(secret, job, time.Now()))
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
			_ = s.Received()
			_ = s.State(job)
		}()
	}
	wg.Wait()
	if n := len(s.Deliveries("c")); n != 20 {
		t.Errorf("%d deliveries", n)
	}
}

func TestStopOnContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Start(ctx, Options{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Post(s.URL(), "application/json", strings.NewReader("{}"))
		if err != nil {
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("sink still answering after its context ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := s.Stop(); err != nil {
		t.Error(err)
	}
}

// The sink keeps a job's log as service-cloud-api does: replaced by every
// callback that carries logs (even an empty string), kept by one that
// carries none or null, cut to the last 60,000 characters, frozen once the
// job is final.
func TestLogsAreStoredAsTheAPIStoresThem(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := Start(ctx, Options{Secret: []byte("secret-for-the-log-test-0123456789")})
	if err != nil {
		t.Fatal(err)
	}
	str := func(v string) *string { return &v }
	post := func(status string, logs *string) {
		t.Helper()
		if code, err := s.Post(ctx, "job-1", status, logs); err != nil || code != http.StatusOK {
			t.Fatalf("post %s: %d, %v", status, code, err)
		}
	}
	raw := func(body string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, s.URL(), strings.NewReader(body))
		req.Header.Set(TokenHeader, s.Token("job-1"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("post %s: %v %v", body, resp, err)
		}
		resp.Body.Close()
	}

	post("RUNNING", str("line 1\n"))
	post("RUNNING", str("line 1\nline 2\n"))
	if got := s.Logs("job-1"); got != "line 1\nline 2\n" {
		t.Errorf("after two RUNNING: %q, want the second replacing the first", got)
	}
	post("RUNNING", nil)
	raw(`{"buildJobId":"job-1","status":"RUNNING","logs":null}`)
	if got := s.Logs("job-1"); got != "line 1\nline 2\n" {
		t.Errorf("callbacks without logs changed the log to %q", got)
	}
	long := strings.Repeat("é", MaxStoredLogChars) + "tail"
	post("RUNNING", &long)
	if got := []rune(s.Logs("job-1")); len(got) != MaxStoredLogChars || !strings.HasSuffix(string(got), "tail") {
		t.Errorf("long log stored as %d characters ending %q, want the last %d", len(got), string(got[len(got)-4:]), MaxStoredLogChars)
	}
	post("FAILED", str(""))
	if got := s.Logs("job-1"); got != "" {
		t.Errorf("an empty logs string must replace the log (the API does), got %q", got)
	}
	post("RUNNING", str("after the end"))
	if got := s.Logs("job-1"); got != "" {
		t.Errorf("a delivery after the final status changed the log to %q", got)
	}
}
