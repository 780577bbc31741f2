package subscriptions

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/alternatefutures/af-builder/functions/dispatch/apiauth"
)

// LookupResponse is what service-cloud-api answers to a lookup.
type LookupResponse struct {
	Builds []Service `json:"builds"`
}

// HTTP asks service-cloud-api: POST URL with a PushKey body, signed with
// apiauth, answered with a LookupResponse. The API creates (or finds) one
// BuildJob per tracking service and returns its id; for the same delivery
// id it must return the same ids, which is what makes redeliveries safe.
type HTTP struct {
	URL    string
	Secret []byte
	// Client defaults to one with a 4 s timeout: the whole webhook has 10.
	Client *http.Client
	Now    func() time.Time
}

const maxLookupResponse = 1 << 20

// Lookup implements Source. One retry covers a blip (a connection reset, a
// 502 from a load balancer); anything longer would eat the webhook's budget.
func (h *HTTP) Lookup(ctx context.Context, key PushKey) ([]Service, error) {
	body, err := json.Marshal(key)
	if err != nil {
		return nil, fmt.Errorf("lookup: encode: %w", err)
	}
	var last error
	for attempt := 0; attempt < 2; attempt++ {
		if attempt > 0 {
			select {
			case <-time.After(200 * time.Millisecond):
			case <-ctx.Done():
				return nil, fmt.Errorf("lookup services for %s/%s@%s: %w (after %v)", key.RepoOwner, key.RepoName, key.Branch, ctx.Err(), last)
			}
		}
		svcs, retry, err := h.once(ctx, body)
		if err == nil {
			return svcs, nil
		}
		last = err
		if !retry {
			break
		}
	}
	return nil, fmt.Errorf("lookup services for %s/%s@%s: %w", key.RepoOwner, key.RepoName, key.Branch, last)
}

func (h *HTTP) once(ctx context.Context, body []byte) (svcs []Service, retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return nil, false, fmt.Errorf("bad SUBSCRIPTIONS_URL: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	apiauth.Sign(req, h.Secret, body, now())
	client := h.Client
	if client == nil {
		client = &http.Client{Timeout: 4 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, true, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxLookupResponse+1))
	if err != nil {
		return nil, true, fmt.Errorf("read answer: %w", err)
	}
	switch {
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return nil, true, fmt.Errorf("service-cloud-api answered HTTP %d", resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return nil, false, fmt.Errorf("service-cloud-api answered HTTP %d: %.200s", resp.StatusCode, bytes.TrimSpace(raw))
	case len(raw) > maxLookupResponse:
		return nil, false, errors.New("answer exceeds 1 MiB")
	}
	var lr LookupResponse
	if err := json.Unmarshal(raw, &lr); err != nil {
		return nil, false, fmt.Errorf("decode answer: %w", err)
	}
	// Only the contract's shape is checked here. The values are validated
	// per build when it is assembled, so that one misconfigured service is
	// reported on its own BuildJob instead of blocking its siblings.
	for i, s := range lr.Builds {
		if s.BuildJobID == "" || s.ServiceID == "" {
			return nil, false, fmt.Errorf("invalid answer: builds[%d] lacks buildJobId or serviceId", i)
		}
	}
	return lr.Builds, false, nil
}
