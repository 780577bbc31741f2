// Package callback is the client side of service-cloud-api's
// POST /internal/build-callback: the body, the token header, and retries.
package callback

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"
)

// Status of a build as the platform records it.
type Status string

const (
	Running   Status = "RUNNING"
	Succeeded Status = "SUCCEEDED"
	Failed    Status = "FAILED"
	Canceled  Status = "CANCELED"
)

// Terminal reports whether s ends a build.
func (s Status) Terminal() bool { return s == Succeeded || s == Failed || s == Canceled }

const (
	// TokenHeader carries the build's one-time token.
	TokenHeader = "X-AF-Build-Token"
	// MaxLogBytes is the most log tail the API stores per update.
	MaxLogBytes = 16000
	// MaxErrorBytes keeps an error message readable and the body small.
	MaxErrorBytes = 4000
	// MaxBodyBytes is the API's limit on a whole body.
	MaxBodyBytes = 256 << 10
)

// Payload is one callback body. Fields beyond the API's documented ones
// (digest, phase, class, timings) are ignored by it and kept for support.
type Payload struct {
	BuildJobID        string           `json:"buildJobId"`
	Status            Status           `json:"status"`
	Logs              string           `json:"logs"`
	ImageTag          string           `json:"imageTag,omitempty"`
	CommitSHA         string           `json:"commitSha,omitempty"`
	DetectedFramework string           `json:"detectedFramework,omitempty"`
	DetectedPort      *int             `json:"detectedPort,omitempty"`
	ErrorMessage      string           `json:"errorMessage,omitempty"`
	ImageDigest       string           `json:"imageDigest,omitempty"`
	FailedPhase       string           `json:"failedPhase,omitempty"`
	ErrorClass        string           `json:"errorClass,omitempty"`
	PhaseTimingsMs    map[string]int64 `json:"phaseTimingsMs,omitempty"`
	// CacheHit and CachedSteps say how much of a successful build came from
	// a layer cache (CachedSteps of Steps Dockerfile steps, FROM excluded).
	CacheHit    bool `json:"cacheHit,omitempty"`
	CachedSteps int  `json:"cachedSteps,omitempty"`
	Steps       int  `json:"steps,omitempty"`
}

// MarshalJSON caps the log tail and error message, and writes detectedPort as
// an explicit null on success, as the API documents "number or null".
func (p Payload) MarshalJSON() ([]byte, error) {
	type plain Payload
	q := plain(p)
	q.Logs = Tail(q.Logs, MaxLogBytes)
	q.ErrorMessage = head(q.ErrorMessage, MaxErrorBytes)
	b, err := json.Marshal(q)
	if err != nil || p.Status != Succeeded || p.DetectedPort != nil {
		return b, err
	}
	return append(b[:len(b)-1], []byte(`,"detectedPort":null}`)...), nil
}

// Tail returns at most n bytes from the end of s, starting at a line break
// when one is near, and never in the middle of a UTF-8 sequence.
func Tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	for len(s) > 0 && !utf8.RuneStart(s[0]) {
		s = s[1:]
	}
	// Dropping a partial first line reads better, unless that loses too much.
	if i := bytes.IndexByte([]byte(s), '\n'); i >= 0 && i < 512 {
		s = s[i+1:]
	}
	return s
}

func head(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Step back to the start of a rune cut in two; only the cut is looked
	// at, so an invalid byte elsewhere does not cost the message.
	for i := 0; i < utf8.UTFMax-1 && n > 0 && !utf8.RuneStart(s[n]); i++ {
		n--
	}
	return s[:n] + "…"
}

// StatusError is an answer the client will not retry.
type StatusError struct {
	Code int
	Body string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("callback rejected with HTTP %d: %s", e.Code, e.Body)
}

// Client posts payloads for one build.
type Client struct {
	URL   string
	Token string
	HTTP  *http.Client
	// Backoff between attempts: exponential from Base to Max with full jitter.
	Base, Max time.Duration
	// MaxElapsed bounds one Send, retries included.
	MaxElapsed time.Duration
	// Sleep is replaceable so tests of the backoff need not wait.
	Sleep func(ctx context.Context, d time.Duration) error
}

const (
	defaultBase = 500 * time.Millisecond
	defaultMax  = 10 * time.Second
)

// New returns a client with production defaults.
func New(url, token string) *Client {
	return &Client{
		URL:        url,
		Token:      token,
		HTTP:       &http.Client{Timeout: 15 * time.Second},
		Base:       defaultBase,
		Max:        defaultMax,
		MaxElapsed: 2 * time.Minute,
	}
}

// Send posts p, retrying network errors, 408, 429 and 5xx with backoff until
// MaxElapsed or ctx ends; any other 4xx is final and returned as *StatusError.
func (c *Client) Send(ctx context.Context, p Payload) error {
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode callback: %w", err)
	}
	if len(body) >= MaxBodyBytes {
		return fmt.Errorf("callback body is %d bytes; it must stay under %d", len(body), MaxBodyBytes)
	}
	if c.MaxElapsed > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.MaxElapsed)
		defer cancel()
	}
	sleep := c.Sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	// A Client built without New still backs off rather than spin.
	base, max := c.Base, c.Max
	if base <= 0 {
		base = defaultBase
	}
	if max <= 0 {
		max = defaultMax
	}
	var last error
	// gaveUp reports the last real failure and, beside it, why retrying
	// stopped (canceled, or out of time).
	gaveUp := func(attempts int, stop error) error {
		if errors.Is(last, stop) {
			return fmt.Errorf("send %s callback: gave up after %d attempts: %w", p.Status, attempts, last)
		}
		return fmt.Errorf("send %s callback: gave up after %d attempts: %w (%w)", p.Status, attempts, last, stop)
	}
	for attempt := 0; ; attempt++ {
		retryAfter, err := c.post(ctx, body)
		if err == nil {
			return nil
		}
		var se *StatusError
		if errors.As(err, &se) {
			return err
		}
		if ctx.Err() != nil && last != nil {
			// This attempt was cut short; the one before says what is wrong.
			return gaveUp(attempt+1, ctx.Err())
		}
		last = err
		wait := Backoff(attempt, base, max)
		if retryAfter > wait && retryAfter <= max {
			wait = retryAfter
		}
		if err := sleep(ctx, wait); err != nil {
			return gaveUp(attempt+1, err)
		}
	}
}

type retryable struct{ err error }

func (r retryable) Error() string { return r.err.Error() }
func (r retryable) Unwrap() error { return r.err }

// post makes one attempt. A *StatusError is final; anything else may be retried.
func (c *Client) post(ctx context.Context, body []byte) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return 0, &StatusError{Code: 0, Body: "bad callback URL"}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(TokenHeader, c.Token)
	hc := http.Client{}
	if c.HTTP != nil {
		hc = *c.HTTP
	}
	// A redirect is not a delivery: following it would turn the POST into a
	// GET (301-303) or send the token to wherever it points (307, 308). The
	// 3xx is returned as a *StatusError instead.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Do(req)
	if err != nil {
		// net/http errors quote the URL, which never carries credentials here
		// (validate.CallbackURL forbids them).
		return 0, retryable{err}
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return 0, nil
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return retryAfter(resp.Header.Get("Retry-After")), retryable{fmt.Errorf("callback answered HTTP %d", code)}
	default:
		return 0, &StatusError{Code: code, Body: string(bytes.TrimSpace(snippet))}
	}
}

func retryAfter(v string) time.Duration {
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	return 0
}

// Backoff is the wait before retry number attempt (from 0): a random duration
// up to min(max, base*2^attempt); a non-positive max caps it at base. Full jitter keeps many runners that lost the
// API at the same moment from coming back in step.
func Backoff(attempt int, base, max time.Duration) time.Duration {
	if base <= 0 {
		return 0
	}
	if attempt < 0 {
		attempt = 0
	}
	if max <= 0 {
		max = base
	}
	ceil := max
	if attempt < 30 {
		if d := base << attempt; d > 0 && d < max {
			ceil = d
		}
	}
	return time.Duration(rand.Int64N(int64(ceil)) + 1)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
