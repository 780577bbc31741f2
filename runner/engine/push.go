package engine

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"

	"github.com/alternatefutures/af-builder/runner/failure"
)

// Push uploads ref with the given credentials and returns the manifest
// digest the registry stored. An authentication failure arrives inside the
// stream, not as an HTTP error, and is reported as such.
func (e *Engine) Push(ctx context.Context, ref, user, password string, out io.Writer) (string, error) {
	// The engine wants some auth header even for anonymous pushes ("{}").
	auth := "e30="
	if user != "" {
		b, err := json.Marshal(registry.AuthConfig{Username: user, Password: password})
		if err != nil {
			return "", failure.Wrap(failure.Infrastructure, "encode registry credentials", err)
		}
		auth = base64.URLEncoding.EncodeToString(b)
	}
	res, err := e.cli.ImagePush(ctx, ref, client.ImagePushOptions{RegistryAuth: auth})
	if err != nil {
		return "", failure.Wrap(failure.Infrastructure, "the Docker engine refused the push", err)
	}
	defer res.Close()
	var digest string
	last := map[string]string{}
	for m, err := range res.JSONMessages(ctx) {
		if err != nil {
			return "", failure.Wrap(failure.Transient, "reading the push progress failed", err)
		}
		if m.Error != nil {
			return "", classifyPushError(m.Error.Message)
		}
		if m.Aux != nil {
			var aux struct{ Tag, Digest string }
			if json.Unmarshal(*m.Aux, &aux) == nil && aux.Digest != "" {
				digest = aux.Digest
			}
			continue
		}
		// Print each layer's state changes, not every progress tick.
		if m.Status != "" && last[m.ID] != m.Status {
			last[m.ID] = m.Status
			if m.ID != "" {
				fmt.Fprintf(out, "%s: %s\n", m.ID, m.Status)
			} else {
				fmt.Fprintln(out, m.Status)
			}
		}
	}
	if digest == "" {
		return "", failure.Wrap(failure.Infrastructure, "the registry did not report a digest for the pushed image", nil)
	}
	return digest, nil
}

// serverError is an HTTP 5xx status in the registry's message. It must be a
// whole number: a tag or digest full of hex digits is not a status.
var serverError = regexp.MustCompile(`\b5\d\d\b`)

func classifyPushError(msg string) error {
	lower := strings.ToLower(msg)
	switch {
	case strings.Contains(lower, "unauthorized"), strings.Contains(lower, "authentication required"),
		strings.Contains(lower, "denied"), strings.Contains(lower, "forbidden"):
		// The platform mints the registry credentials: not the user's fault.
		return failure.Wrap(failure.Infrastructure, "the registry rejected the push credentials: "+msg, nil)
	case strings.Contains(lower, "blob upload unknown"), strings.Contains(lower, "timeout"),
		strings.Contains(lower, "connection"), strings.Contains(lower, "eof"), serverError.MatchString(lower):
		return failure.Wrap(failure.Transient, "pushing to the registry failed: "+msg, nil)
	default:
		return failure.Wrap(failure.Infrastructure, "pushing to the registry failed: "+msg, nil)
	}
}
