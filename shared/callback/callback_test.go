package callback_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/alternatefutures/af-builder/shared/callback"
)

const buildToken = "am9iLTEyMy4xNzk1NTIxNjAw.c2lnbmF0dXJl"

// answer is one scripted response of the fake API.
type answer struct {
	code       int
	retryAfter string
	body       string
}

// api is a stand-in for service-cloud-api's callback endpoint. It answers
// with the scripted answers in order, repeating the last one.
type api struct {
	*httptest.Server
	mu      sync.Mutex
	answers []answer
	reqs    []*recorded
}

type recorded struct {
	method, path, contentType, token string
	body                             []byte
}

func newAPI(t *testing.T, answers ...answer) *api {
	t.Helper()
	if len(answers) == 0 {
		answers = []answer{{code: 200}}
	}
	a := &api{answers: answers}
	a.Server = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.Close)
	return a
}

func (a *api) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	a.reqs = append(a.reqs, &recorded{
		method: r.Method, path: r.URL.Path, contentType: r.Header.Get("Content-Type"),
		token: r.Header.Get(callback.TokenHeader), body: body,
	})
	ans := a.answers[min(len(a.reqs), len(a.answers))-1]
	a.mu.Unlock()
	if ans.retryAfter != "" {
		w.Header().Set("Retry-After", ans.retryAfter)
	}
	w.WriteHeader(ans.code)
	io.WriteString(w, ans.body)
}

func (a *api) requests() []*recorded {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*recorded(nil), a.reqs...)
}

// sleeper records the waits a client asks for. With real set it also
// waits (so MaxElapsed can pass); otherwise it returns at once.
type sleeper struct {
	mu    sync.Mutex
	waits []time.Duration
	real  bool
}

func (s *sleeper) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	if !s.real {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (s *sleeper) recorded() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.waits...)
}

// client returns a fast client for url whose waits are recorded, not slept.
func client(url string) (*callback.Client, *sleeper) {
	c := callback.New(url+"/internal/build-callback", buildToken)
	c.Base, c.Max, c.MaxElapsed = time.Millisecond, 8*time.Millisecond, 5*time.Second
	s := &sleeper{}
	c.Sleep = s.sleep
	return c, s
}

func port(n int) *int { return &n }

// fields decodes a body as the API would, keeping numbers exact.
func fields(t *testing.T, body []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, body)
	}
	return m
}

func TestSendSucceededCarriesTheDocumentedFields(t *testing.T) {
	a := newAPI(t)
	c, _ := client(a.URL)
	err := c.Send(context.Background(), callback.Payload{
		BuildJobID:        "job-123",
		Status:            callback.Succeeded,
		Logs:              "#1 building\n#2 done\n",
		ImageTag:          "ghcr.io/af/u--o-r:0123456789ab",
		CommitSHA:         "0123456789abcdef0123456789abcdef01234567",
		DetectedFramework: "nextjs",
		DetectedPort:      port(3000),
		ImageDigest:       "sha256:" + strings.Repeat("a", 64),
	})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	reqs := a.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.method != http.MethodPost || r.path != "/internal/build-callback" {
		t.Errorf("request = %s %s", r.method, r.path)
	}
	if r.token != buildToken {
		t.Errorf("%s = %q, want %q", callback.TokenHeader, r.token, buildToken)
	}
	if r.contentType != "application/json" {
		t.Errorf("Content-Type = %q", r.contentType)
	}
	want := map[string]any{
		"buildJobId":        "job-123",
		"status":            "SUCCEEDED",
		"logs":              "#1 building\n#2 done\n",
		"imageTag":          "ghcr.io/af/u--o-r:0123456789ab",
		"commitSha":         "0123456789abcdef0123456789abcdef01234567",
		"detectedFramework": "nextjs",
		"detectedPort":      json.Number("3000"),
		"imageDigest":       "sha256:" + strings.Repeat("a", 64),
	}
	got := fields(t, r.body)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %#v, want %#v", k, got[k], v)
		}
	}
	if _, ok := got["errorMessage"]; ok {
		t.Errorf("errorMessage sent on success: %s", r.body)
	}
}

func TestDetectedPort(t *testing.T) {
	cases := []struct {
		name    string
		p       callback.Payload
		present bool
		want    any // for present fields: nil means an explicit null
	}{
		{"succeeded, unknown port: explicit null", callback.Payload{Status: callback.Succeeded}, true, nil},
		{"succeeded, known port", callback.Payload{Status: callback.Succeeded, DetectedPort: port(8080)}, true, json.Number("8080")},
		{"succeeded, port 0", callback.Payload{Status: callback.Succeeded, DetectedPort: port(0)}, true, json.Number("0")},
		{"running", callback.Payload{Status: callback.Running}, false, nil},
		{"failed", callback.Payload{Status: callback.Failed, ErrorMessage: "boom"}, false, nil},
		{"canceled", callback.Payload{Status: callback.Canceled}, false, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.p.BuildJobID = "job-1"
			body, err := json.Marshal(c.p)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := fields(t, body)["detectedPort"]
			if ok != c.present || ok && got != c.want {
				t.Errorf("detectedPort present=%v value=%#v; want present=%v value=%#v\n%s", ok, got, c.present, c.want, body)
			}
		})
	}
}

func TestFailedCarriesTheErrorMessage(t *testing.T) {
	a := newAPI(t)
	c, _ := client(a.URL)
	err := c.Send(context.Background(), callback.Payload{
		BuildJobID: "job-1", Status: callback.Failed, Logs: "npm ERR! missing script: build\n",
		ErrorMessage: "build failed: npm run build exited with 1", FailedPhase: "build",
	})
	if err != nil {
		t.Fatal(err)
	}
	got := fields(t, a.requests()[0].body)
	if got["status"] != "FAILED" || got["errorMessage"] != "build failed: npm run build exited with 1" || got["failedPhase"] != "build" {
		t.Errorf("body = %v", got)
	}
	for _, k := range []string{"imageTag", "commitSha", "detectedFramework", "detectedPort"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s sent with a failure: %v", k, got)
		}
	}
}

func TestRunningAlwaysCarriesLogs(t *testing.T) {
	body, err := json.Marshal(callback.Payload{BuildJobID: "job-1", Status: callback.Running})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := fields(t, body)["logs"]; !ok || got != "" {
		t.Errorf("logs = %#v (present %v), want an empty string", got, ok)
	}
}

func TestLogsAreCutToTheirTail(t *testing.T) {
	// Every pad shifts the cut by a byte, so it falls in the middle of a
	// two-, three- and four-byte rune at least once; no line breaks, so the
	// cut is not moved to one.
	for _, r := range []string{"é", "€", "🚀"} {
		for pad := 0; pad < 4; pad++ {
			logs := strings.Repeat(r, 20000/len(r)) + strings.Repeat("x", pad) + "END"
			body, err := json.Marshal(callback.Payload{BuildJobID: "j", Status: callback.Running, Logs: logs})
			if err != nil {
				t.Fatal(err)
			}
			got := fields(t, body)["logs"].(string)
			switch {
			case len(got) > callback.MaxLogBytes:
				t.Errorf("%s pad %d: %d bytes of logs, want at most %d", r, pad, len(got), callback.MaxLogBytes)
			case len(got) < callback.MaxLogBytes-utf8.UTFMax:
				t.Errorf("%s pad %d: only %d bytes of logs kept", r, pad, len(got))
			case !utf8.ValidString(got) || strings.ContainsRune(got, utf8.RuneError):
				t.Errorf("%s pad %d: logs cut inside a rune", r, pad)
			case !strings.HasSuffix(logs, got):
				t.Errorf("%s pad %d: logs are not the tail of the build log", r, pad)
			}
		}
	}
}

func TestTail(t *testing.T) {
	t.Run("short logs are untouched", func(t *testing.T) {
		s := "line 1\nline 2\n"
		if got := callback.Tail(s, 100); got != s {
			t.Errorf("Tail = %q", got)
		}
	})
	t.Run("starts at a line when one begins near the cut", func(t *testing.T) {
		var b strings.Builder
		for i := 0; b.Len() < 40000; i++ {
			b.WriteString("step " + strconv.Itoa(i) + ": compiling something long enough\n")
		}
		s := b.String()
		got := callback.Tail(s, callback.MaxLogBytes)
		if len(got) > callback.MaxLogBytes || !strings.HasSuffix(s, got) {
			t.Fatalf("Tail is %d bytes, suffix=%v", len(got), strings.HasSuffix(s, got))
		}
		if !strings.HasPrefix(got, "step ") || s[len(s)-len(got)-1] != '\n' {
			t.Errorf("Tail starts mid-line: %.40q", got)
		}
	})
	t.Run("keeps a long partial line rather than lose it", func(t *testing.T) {
		s := strings.Repeat("a", 20000) + "\n" + strings.Repeat("b", 100)
		got := callback.Tail(s, 1000)
		if len(got) != 1000 || !strings.HasSuffix(s, got) {
			t.Errorf("Tail is %d bytes, want the last 1000", len(got))
		}
	})
	t.Run("any length is cut at a rune boundary", func(t *testing.T) {
		s := strings.Repeat("aé€🚀", 50)
		for n := 0; n <= len(s); n++ {
			got := callback.Tail(s, n)
			if len(got) > n || !utf8.ValidString(got) || !strings.HasSuffix(s, got) || len(got) < n-utf8.UTFMax+1 {
				t.Fatalf("Tail(s, %d) = %q", n, got)
			}
		}
	})
}

func TestErrorMessageIsCapped(t *testing.T) {
	for _, r := range []string{"x", "é", "€", "🚀"} {
		for pad := 0; pad < 4; pad++ {
			msg := strings.Repeat("y", pad) + strings.Repeat(r, 10000/len(r))
			body, err := json.Marshal(callback.Payload{BuildJobID: "j", Status: callback.Failed, ErrorMessage: msg})
			if err != nil {
				t.Fatal(err)
			}
			got := fields(t, body)["errorMessage"].(string)
			kept, ok := strings.CutSuffix(got, "…")
			switch {
			case !ok:
				t.Errorf("%s pad %d: a cut message does not end with an ellipsis", r, pad)
			case len(kept) > callback.MaxErrorBytes || len(kept) < callback.MaxErrorBytes-utf8.UTFMax:
				t.Errorf("%s pad %d: %d bytes of the message kept, want about %d", r, pad, len(kept), callback.MaxErrorBytes)
			case !strings.HasPrefix(msg, kept) || strings.ContainsRune(kept, utf8.RuneError):
				t.Errorf("%s pad %d: the message is not cut at a rune boundary of its start", r, pad)
			}
		}
	}
	short := "clone failed: repository not found"
	body, _ := json.Marshal(callback.Payload{BuildJobID: "j", Status: callback.Failed, ErrorMessage: short})
	if got := fields(t, body)["errorMessage"]; got != short {
		t.Errorf("short message changed to %q", got)
	}
}

// Build output is not always UTF-8; a stray byte early in a long message
// must not cost the whole message.
func TestErrorMessageWithInvalidUTF8IsStillCappedNotLost(t *testing.T) {
	msg := "compiler said: \xff\xfe then " + strings.Repeat("z", 2*callback.MaxErrorBytes)
	body, err := json.Marshal(callback.Payload{BuildJobID: "j", Status: callback.Failed, ErrorMessage: msg})
	if err != nil {
		t.Fatal(err)
	}
	got := fields(t, body)["errorMessage"].(string)
	if !strings.HasPrefix(got, "compiler said: ") || strings.Count(got, "z") < callback.MaxErrorBytes-100 {
		t.Errorf("errorMessage = %.80q (%d bytes): the message was lost", got, len(got))
	}
}

func TestWorstCaseBodyStaysUnderTheAPILimit(t *testing.T) {
	// Control characters and invalid bytes take six bytes each once escaped.
	p := callback.Payload{
		BuildJobID: strings.Repeat("j", 128), Status: callback.Failed,
		Logs:         strings.Repeat("\x01", 3*callback.MaxLogBytes),
		ErrorMessage: strings.Repeat("\xff", 3*callback.MaxErrorBytes),
		FailedPhase:  "build", ErrorClass: "user",
		PhaseTimingsMs: map[string]int64{"clone": 1, "plan": 2, "build": 3, "push": 4},
	}
	body, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(body) > callback.MaxBodyBytes {
		t.Errorf("body is %d bytes, over %d", len(body), callback.MaxBodyBytes)
	}
}

func TestSendRefusesAnOversizedBodyWithoutSendingIt(t *testing.T) {
	a := newAPI(t)
	c, _ := client(a.URL)
	err := c.Send(context.Background(), callback.Payload{
		BuildJobID: "j", Status: callback.Succeeded, ImageDigest: strings.Repeat("d", callback.MaxBodyBytes),
	})
	if err == nil {
		t.Fatal("Send accepted a body over the API's limit")
	}
	if n := len(a.requests()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

func TestSendRetriesUntilDelivered(t *testing.T) {
	a := newAPI(t, answer{code: 503}, answer{code: 503}, answer{code: 200})
	c, s := client(a.URL)
	p := callback.Payload{BuildJobID: "job-1", Status: callback.Running, Logs: "hello"}
	if err := c.Send(context.Background(), p); err != nil {
		t.Fatalf("Send: %v", err)
	}
	reqs := a.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	for i, r := range reqs {
		if !bytes.Equal(r.body, reqs[0].body) || r.token != buildToken {
			t.Errorf("attempt %d differs from the first", i+1)
		}
	}
	if waits := s.recorded(); len(waits) != 2 {
		t.Errorf("waited %d times, want 2 (between 3 attempts): %v", len(waits), waits)
	}
}

func TestSendRetries(t *testing.T) {
	for _, code := range []int{408, 429, 500, 502, 503, 504} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			a := newAPI(t, answer{code: code}, answer{code: 200})
			c, _ := client(a.URL)
			if err := c.Send(context.Background(), callback.Payload{BuildJobID: "j", Status: callback.Running}); err != nil {
				t.Fatalf("Send: %v", err)
			}
			if n := len(a.requests()); n != 2 {
				t.Errorf("%d requests, want 2", n)
			}
		})
	}
}

func TestSendDoesNotRetryOtherClientErrors(t *testing.T) {
	for _, code := range []int{400, 401, 403, 404, 409, 413, 422} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			a := newAPI(t, answer{code: code, body: "  bad token \n"}, answer{code: 200})
			c, s := client(a.URL)
			err := c.Send(context.Background(), callback.Payload{BuildJobID: "j", Status: callback.Failed})
			var se *callback.StatusError
			if !errors.As(err, &se) {
				t.Fatalf("Send = %v (%T), want *StatusError", err, err)
			}
			if se.Code != code || se.Body != "bad token" {
				t.Errorf("StatusError = %+v, want code %d and the trimmed body", se, code)
			}
			if !strings.Contains(err.Error(), strconv.Itoa(code)) {
				t.Errorf("error %q does not show the status", err)
			}
			if n := len(a.requests()); n != 1 {
				t.Errorf("%d requests, want exactly 1", n)
			}
			if waits := s.recorded(); len(waits) != 0 {
				t.Errorf("waited %v before giving up", waits)
			}
		})
	}
}

// A redirect is not a delivery: following a 301/302 would turn the POST into
// a GET and count a login page as success, and a 307 to another host would
// hand it the build token.
func TestSendDoesNotFollowRedirects(t *testing.T) {
	var elsewhere []string
	var mu sync.Mutex
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		elsewhere = append(elsewhere, r.Method+" token="+r.Header.Get(callback.TokenHeader))
		mu.Unlock()
	}))
	defer other.Close()
	for _, code := range []int{301, 302, 303, 307, 308} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, other.URL+"/login", code)
			}))
			defer redirecting.Close()
			c, _ := client(redirecting.URL)
			err := c.Send(context.Background(), callback.Payload{BuildJobID: "j", Status: callback.Succeeded})
			var se *callback.StatusError
			if !errors.As(err, &se) || se.Code != code {
				t.Errorf("Send = %v, want a *StatusError with code %d", err, code)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if len(elsewhere) != 0 {
		t.Errorf("the redirect target was called: %v", elsewhere)
	}
}

func TestSendRetriesNetworkErrorsUntilMaxElapsed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close() // nothing listens: every attempt is refused

	c, s := client(url)
	c.Base, c.Max, c.MaxElapsed = time.Millisecond, 5*time.Millisecond, 150*time.Millisecond
	s.real = true
	start := time.Now()
	err = c.Send(context.Background(), callback.Payload{BuildJobID: "j", Status: callback.Failed})
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("Send succeeded with nothing listening")
	}
	var se *callback.StatusError
	if errors.As(err, &se) {
		t.Errorf("a network error was treated as final: %v", err)
	}
	// The last attempt may be cut short by the deadline: the error must
	// still show the real cause, and why retrying stopped.
	if !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), "gave up") {
		t.Errorf("error %q does not say what happened", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %q does not say that time ran out", err)
	}
	waits := s.recorded()
	if len(waits) < 3 {
		t.Errorf("only %d retries in %v", len(waits), elapsed)
	}
	for _, w := range waits {
		if w <= 0 || w > c.Max {
			t.Errorf("wait %v outside (0, %v]", w, c.Max)
		}
	}
	if elapsed < c.MaxElapsed || elapsed > c.MaxElapsed+2*time.Second {
		t.Errorf("Send gave up after %v, want about MaxElapsed %v", elapsed, c.MaxElapsed)
	}
}

func TestSendHonoursRetryAfterWithinMax(t *testing.T) {
	cases := []struct {
		name       string
		code       int
		retryAfter string
		check      func(time.Duration) bool
	}{
		{"503, 2s", 503, "2", func(w time.Duration) bool { return w == 2*time.Second }},
		{"429, 3s", 429, "3", func(w time.Duration) bool { return w == 3*time.Second }},
		{"429, at Max", 429, "5", func(w time.Duration) bool { return w == 5*time.Second }},
		{"over Max falls back to backoff", 503, "3600", func(w time.Duration) bool { return w > 0 && w <= time.Millisecond }},
		{"not a number", 503, "soon", func(w time.Duration) bool { return w > 0 && w <= time.Millisecond }},
		{"negative", 503, "-5", func(w time.Duration) bool { return w > 0 && w <= time.Millisecond }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := newAPI(t, answer{code: c.code, retryAfter: c.retryAfter}, answer{code: 200})
			cl, s := client(a.URL)
			cl.Base, cl.Max = time.Millisecond, 5*time.Second
			if err := cl.Send(context.Background(), callback.Payload{BuildJobID: "j", Status: callback.Running}); err != nil {
				t.Fatal(err)
			}
			waits := s.recorded()
			if len(waits) != 1 || !c.check(waits[0]) {
				t.Errorf("waits = %v after Retry-After: %s", waits, c.retryAfter)
			}
		})
	}
}

func TestCancelStopsRetrying(t *testing.T) {
	a := newAPI(t, answer{code: 503})
	c, s := client(a.URL)
	c.Base, c.Max, c.MaxElapsed = 5*time.Millisecond, 20*time.Millisecond, time.Minute
	s.real = true
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Send(ctx, callback.Payload{BuildJobID: "j", Status: callback.Running}) }()

	for deadline := time.Now().Add(5 * time.Second); len(a.requests()) < 2; {
		if time.Now().After(deadline) {
			t.Fatal("Send did not retry")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	var err error
	select {
	case err = <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Send kept going after its context was canceled")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Send = %v, want an error that is context.Canceled", err)
	}
	n := len(a.requests())
	time.Sleep(50 * time.Millisecond)
	if m := len(a.requests()); m != n {
		t.Errorf("%d more requests after Send returned", m-n)
	}
}

func TestSendWithACanceledContextDoesNotRetry(t *testing.T) {
	a := newAPI(t)
	c, s := client(a.URL)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Send(ctx, callback.Payload{BuildJobID: "j", Status: callback.Canceled}); err == nil {
		t.Fatal("Send succeeded on a canceled context")
	}
	if n := len(s.recorded()); n > 1 {
		t.Errorf("retried %d times on a canceled context", n)
	}
}

// A Client built without New still backs off: no busy loop, no panic.
func TestZeroValueClientBacksOff(t *testing.T) {
	for name, c := range map[string]*callback.Client{
		"nothing set":   {},
		"only Base set": {Base: time.Millisecond},
		"only Max set":  {Max: time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			a := newAPI(t, answer{code: 503}, answer{code: 200})
			s := &sleeper{}
			c.URL, c.Token, c.Sleep = a.URL, buildToken, s.sleep
			if err := c.Send(context.Background(), callback.Payload{BuildJobID: "j", Status: callback.Running}); err != nil {
				t.Fatal(err)
			}
			if waits := s.recorded(); len(waits) != 1 || waits[0] <= 0 {
				t.Errorf("waits = %v, want one positive wait", waits)
			}
		})
	}
}

func TestBackoffStaysWithinItsBounds(t *testing.T) {
	const base, limit = 10 * time.Millisecond, time.Second
	for attempt := 0; attempt < 70; attempt++ {
		ceil := limit
		if attempt < 7 { // 10ms<<7 = 1.28s is over the cap
			ceil = base << attempt
		}
		lo, hi := time.Duration(1<<62), time.Duration(0)
		for range 200 {
			d := callback.Backoff(attempt, base, limit)
			if d <= 0 || d > ceil {
				t.Fatalf("Backoff(%d) = %v, want within (0, %v]", attempt, d, ceil)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		// Full jitter: the waits spread over the whole range.
		if lo > ceil/2 || hi < ceil/2 {
			t.Errorf("Backoff(%d) over 200 samples spans only [%v, %v] of (0, %v]", attempt, lo, hi, ceil)
		}
	}
}

func TestBackoffGrows(t *testing.T) {
	const base, limit = 100 * time.Millisecond, 10 * time.Second
	peak := func(attempt int) time.Duration {
		var p time.Duration
		for range 200 {
			p = max(p, callback.Backoff(attempt, base, limit))
		}
		return p
	}
	if p0, p5 := peak(0), peak(5); p5 <= p0 {
		t.Errorf("longest wait at attempt 5 (%v) is not longer than at attempt 0 (%v)", p5, p0)
	}
}

func TestBackoffOddArguments(t *testing.T) {
	cases := []struct {
		name            string
		attempt         int
		base, max, ceil time.Duration
	}{
		{"base over max", 0, time.Second, 100 * time.Millisecond, 100 * time.Millisecond},
		{"huge attempt", 1 << 30, time.Millisecond, time.Second, time.Second},
		{"shift overflow", 62, time.Second, time.Hour, time.Hour},
		{"negative attempt", -1, time.Millisecond, time.Second, time.Millisecond},
		{"no max", 3, time.Millisecond, 0, time.Millisecond},
		{"1ns base", 0, 1, time.Second, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for range 50 {
				if d := callback.Backoff(c.attempt, c.base, c.max); d <= 0 || d > c.ceil {
					t.Fatalf("Backoff(%d, %v, %v) = %v, want within (0, %v]", c.attempt, c.base, c.max, d, c.ceil)
				}
			}
		})
	}
}

func TestTerminal(t *testing.T) {
	for s, want := range map[callback.Status]bool{
		callback.Running:   false,
		callback.Succeeded: true,
		callback.Failed:    true,
		callback.Canceled:  true,
		"":                 false,
		"succeeded":        false,
	} {
		if got := s.Terminal(); got != want {
			t.Errorf("%q.Terminal() = %v, want %v", s, got, want)
		}
	}
}
