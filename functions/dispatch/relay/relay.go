// Package relay forwards GitHub webhook deliveries that dispatch does not
// build from to another receiver, unchanged. A GitHub App has one webhook
// URL; when dispatch takes it, service-cloud-api's own handler still needs
// the installation events (created, deleted, suspend, unsuspend) that keep
// its installation rows current. The relay sends it the same body with
// GitHub's own headers and signature, so that handler verifies and reads the
// delivery exactly as if GitHub had sent it.
//
// Forwarding never holds up or fails dispatch's answer to GitHub: it runs in
// the background, bounded by a timeout, and a failure is logged and counted.
package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alternatefutures/af-builder/shared/validate"
)

// Config is the relay's configuration.
type Config struct {
	// URL receives the deliveries, e.g. service-cloud-api's
	// https://api.example/webhooks/github.
	URL string
	// Pushes relays push events too (dispatch builds from them either way).
	Pushes bool
	// Timeout bounds one delivery, its retry included.
	Timeout time.Duration
	// PlainHTTP lists hosts URL may reach over plain http besides loopback.
	PlainHTTP validate.PlainHTTPHosts
	// Client is the HTTP client; nil means one without redirects.
	Client *http.Client
	Log    *slog.Logger
}

// Relay forwards deliveries.
type Relay struct {
	cfg    Config
	client *http.Client
	log    *slog.Logger
	wg     sync.WaitGroup

	sent, failed atomic.Int64
}

// Stats counts the deliveries relayed and those that failed.
type Stats struct {
	Sent   int64 `json:"sent"`
	Failed int64 `json:"failed"`
}

// New checks cfg. The URL must be https (or plain http to loopback or a
// listed host): the body is the user's repository metadata and the
// signature header is sent along.
func New(cfg Config) (*Relay, error) {
	if err := validate.CallbackURLFor(cfg.URL, cfg.PlainHTTP); err != nil {
		return nil, fmt.Errorf("RELAY_URL %w", err)
	}
	if cfg.Timeout <= 0 {
		return nil, errors.New("RELAY_TIMEOUT must be positive")
	}
	r := &Relay{cfg: cfg, client: cfg.Client, log: cfg.Log}
	if r.client == nil {
		// A redirect would turn the POST into a GET or send the delivery
		// somewhere nobody configured.
		r.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	return r, nil
}

// Wants reports whether a delivery of event is relayed: every event
// dispatch does not build from, and pushes when so configured.
func (r *Relay) Wants(event string) bool {
	return r != nil && (event != "push" || r.cfg.Pushes)
}

// Forward sends body with GitHub's headers from h to the configured URL in
// the background and returns at once. The body must not change afterwards.
func (r *Relay) Forward(h http.Header, body []byte) {
	out := githubHeaders(h)
	event, delivery := h.Get("X-GitHub-Event"), h.Get("X-GitHub-Delivery")
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.Timeout)
		defer cancel()
		start := time.Now()
		code, err := r.send(ctx, out, body)
		if err == nil && (code == http.StatusServiceUnavailable || code == http.StatusBadGateway || code == http.StatusGatewayTimeout) {
			// One retry for a receiver that is restarting, inside the same bound.
			select {
			case <-time.After(200 * time.Millisecond):
				code, err = r.send(ctx, out, body)
			case <-ctx.Done():
			}
		}
		log := r.log.With("event", event, "delivery", delivery, "duration_ms", time.Since(start).Milliseconds())
		switch {
		case err != nil:
			r.failed.Add(1)
			log.Error("webhook relay failed", "err", err)
		case code < 200 || code > 299:
			r.failed.Add(1)
			log.Error("webhook relay refused", "status", code)
		default:
			r.sent.Add(1)
			log.Info("webhook relayed", "status", code)
		}
	}()
}

func (r *Relay) send(ctx context.Context, h http.Header, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header = h.Clone()
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}

// Wait blocks until every delivery in flight has ended (each is bounded by
// the timeout). Serve calls it on shutdown; under Lambda it runs before an
// invocation returns, since a frozen sandbox would stall the delivery.
func (r *Relay) Wait() {
	if r != nil {
		r.wg.Wait()
	}
}

// Stats returns the counters.
func (r *Relay) Stats() Stats {
	if r == nil {
		return Stats{}
	}
	return Stats{Sent: r.sent.Load(), Failed: r.failed.Load()}
}

// githubHeaders keeps the headers GitHub sets on a delivery (its X-GitHub-*
// and X-Hub-Signature* headers, User-Agent, Content-Type), and nothing a
// proxy or the Lambda front door added.
func githubHeaders(h http.Header) http.Header {
	out := http.Header{}
	for k, vs := range h {
		ck := http.CanonicalHeaderKey(k)
		if strings.HasPrefix(ck, "X-Github-") || strings.HasPrefix(ck, "X-Hub-Signature") ||
			ck == "User-Agent" || ck == "Content-Type" {
			out[ck] = append([]string(nil), vs...)
		}
	}
	return out
}
