package logging_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/alternatefutures/af-builder/functions/dispatch/logging"
)

func TestSecretsAndURLCredentialsAreMaskedEverywhere(t *testing.T) {
	var out bytes.Buffer
	log := logging.New(&out, "json", slog.LevelDebug, "s3cr3t-value-123")
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
