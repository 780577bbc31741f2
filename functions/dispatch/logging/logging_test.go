package logging_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/alternatefutures/af-builder/functions/dispatch/logging"
	"github.com/alternatefutures/af-builder/shared/redact"
)

func TestSecretsAndURLCredentialsAreMaskedEverywhere(t *testing.T) {
	var out bytes.Buffer
	log := logging.New(&out, "json", slog.LevelDebug, nil, "s3cr3t-value-123")
	log = log.With("preset", "has s3cr3t-value-123")
	log.WithGroup("g").Info("message with s3cr3t-value-123",
		"plain", "s3cr3t-value-123",
		"err", errors.New("clone https://x-access-token:ghs_unknown@github.com/a/b.git failed"),
		slog.Group("nested", "v", "s3cr3t-value-123"),
	)
	got := out.String()
	if strings.Contains(got, "s3cr3t-value-123") || strings.Contains(got, "ghs_unknown") {
		t.Errorf("log line leaks: %s", got)
	}
	if strings.Count(got, "[REDACTED]") < 5 {
		t.Errorf("expected every occurrence masked: %s", got)
	}
}

// A Docker config.json quoted in an error holds the registry login as
// base64("user:token"): masked whole, the user's name too.
func TestRegistryLoginIsMaskedInItsBasicForm(t *testing.T) {
	var out bytes.Buffer
	login := redact.Login{User: "af-builder-bot", Secret: "registry-token-0123456789"}
	log := logging.New(&out, "json", slog.LevelDebug, []redact.Login{login})
	basic := base64.StdEncoding.EncodeToString([]byte(login.User + ":" + login.Secret))
	log.Error("cannot create the Job's registry Secret", "config", `{"auths":{"ghcr.io":{"auth":"`+basic+`"}}}`)
	got := out.String()
	if strings.Contains(got, basic) || strings.Contains(got, login.Secret) {
		t.Errorf("log line leaks the registry login: %s", got)
	}
	if !strings.Contains(got, `"auth\":\"[REDACTED]\"`) {
		t.Errorf("the Basic credentials are not masked as one: %s", got)
	}
}
