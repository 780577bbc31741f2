package config_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/alternatefutures/af-builder/functions/dispatch/config"
)

func valid() map[string]string {
	return map[string]string{
		"GITHUB_WEBHOOK_SECRET":  "whsec-0123456789",
		"GITHUB_APP_ID":          "4242",
		"GITHUB_APP_PRIVATE_KEY": "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----",
		"CALLBACK_URL":           "https://api.example.com",
		"CALLBACK_SECRET":        strings.Repeat("c", 32),
		"API_AUTH_SECRET":        strings.Repeat("a", 32),
		"SUBSCRIPTIONS_URL":      "https://api.example.com/internal/build-subscriptions",
	}
}

func TestDefaults(t *testing.T) {
	c, err := config.Load(context.Background(), envconfig.MapLookuper(valid()))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Supersede || c.DryRun || c.GitHubAPIURL != "https://api.github.com" || c.GitHubURL != "https://github.com" ||
		c.MaxWebhookBytes != 25<<20 || c.BuildTimeout.String() != "30m0s" || c.WebhookBudget.String() != "8s" ||
		c.ReapInterval.String() != "1m0s" {
		t.Errorf("defaults = %+v", c)
	}
}

func TestReapIntervalZeroDisablesAndNegativeIsRefused(t *testing.T) {
	env := valid()
	env["REAP_INTERVAL"] = "0"
	if c, err := config.Load(context.Background(), envconfig.MapLookuper(env)); err != nil || c.ReapInterval != 0 {
		t.Errorf("REAP_INTERVAL=0: %v, %v; want accepted as off", c.ReapInterval, err)
	}
	env["REAP_INTERVAL"] = "-1m"
	if _, err := config.Load(context.Background(), envconfig.MapLookuper(env)); err == nil || !strings.Contains(err.Error(), "REAP_INTERVAL") {
		t.Errorf("REAP_INTERVAL=-1m: %v, want refused by name", err)
	}
}

// GitHub sends push payloads of up to 25 MB; a lower default would answer
// large pushes 413, and GitHub does not retry, so they would be lost.
func TestDefaultWebhookLimitCoversGitHubsPayloadCap(t *testing.T) {
	c, err := config.Load(context.Background(), envconfig.MapLookuper(valid()))
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxWebhookBytes < 25_000_000 {
		t.Errorf("MAX_WEBHOOK_BYTES defaults to %d, below GitHub's 25 MB payload cap", c.MaxWebhookBytes)
	}
}

func TestSecretsComeFromFiles(t *testing.T) {
	env := valid()
	delete(env, "CALLBACK_SECRET")
	p := filepath.Join(t.TempDir(), "cb")
	os.WriteFile(p, []byte(strings.Repeat("f", 40)+"\n"), 0o600)
	env["CALLBACK_SECRET_FILE"] = p
	c, err := config.Load(context.Background(), envconfig.MapLookuper(env))
	if err != nil {
		t.Fatal(err)
	}
	if c.CallbackSecret.Reveal() != strings.Repeat("f", 40) {
		t.Errorf("secret from file = %q (the trailing newline is not part of it)", c.CallbackSecret.Reveal())
	}
}

func TestFileProblemsAreReported(t *testing.T) {
	both := valid()
	both["CALLBACK_SECRET_FILE"] = "/dev/null"
	missing := valid()
	delete(missing, "CALLBACK_SECRET")
	missing["CALLBACK_SECRET_FILE"] = "/nonexistent/secret"
	for name, env := range map[string]map[string]string{"both set": both, "unreadable": missing} {
		if _, err := config.Load(context.Background(), envconfig.MapLookuper(env)); err == nil || !strings.Contains(err.Error(), "CALLBACK_SECRET") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func TestProblemsAreNamedNeverShown(t *testing.T) {
	env := valid()
	env["API_AUTH_SECRET"] = "tooshort-secret"
	env["CALLBACK_URL"] = "http://api.example.com"
	env["SUBSCRIPTIONS_FILE"] = "/etc/subs.yaml"
	env["REGISTRY_TOKEN"] = "ghp_lonely-token-value"
	_, err := config.Load(context.Background(), envconfig.MapLookuper(env))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, v := range []string{"API_AUTH_SECRET", "CALLBACK_URL", "SUBSCRIPTIONS_FILE", "REGISTRY_USER"} {
		if !strings.Contains(err.Error(), v) {
			t.Errorf("error does not name %s: %v", v, err)
		}
	}
	for _, s := range []string{"tooshort-secret", "ghp_lonely-token-value"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error shows a secret: %v", err)
		}
	}
}

func TestSecretNeverPrints(t *testing.T) {
	c, err := config.Load(context.Background(), envconfig.MapLookuper(valid()))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "cfg", c, "secret", c.WebhookSecret)
	js, _ := json.Marshal(c)
	for name, out := range map[string]string{
		"%v": fmt.Sprintf("%v", c), "%+v": fmt.Sprintf("%+v", c), "%#v": fmt.Sprintf("%#v", c.WebhookSecret),
		"%s": fmt.Sprintf("%s", c.APIAuthSecret), "json": string(js), "slog": logs.String(),
	} {
		secrets := c.Secrets()
		for _, l := range c.Logins() {
			secrets = append(secrets, l.Secret)
		}
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s shows a secret: %s", name, out)
			}
		}
	}
}

// The runner defaults are checked by the contract's rules at start-up, not
// by the first build that uses them.
func TestRunnerDefaultsAreValidatedAtStartUp(t *testing.T) {
	env := map[string]string{}
	for k, v := range valid() {
		env[k] = v
	}
	env["BUILD_TIMEOUT"] = "5h"
	env["BUILD_NETWORK"] = "overlay"
	_, err := config.Load(context.Background(), envconfig.MapLookuper(env))
	if err == nil || !strings.Contains(err.Error(), "BUILD_TIMEOUT") || !strings.Contains(err.Error(), "BUILD_NETWORK") {
		t.Errorf("Load = %v, want BUILD_TIMEOUT and BUILD_NETWORK refused", err)
	}
}

// Dispatch reads the runner's settings as the runner does: a bare number
// is seconds (LOG_STREAM_INTERVAL=5, as platforms set it for the shell
// runner), so one value means the same on both sides.
func TestRunnerDefaultsTakeBareSecondsAsTheRunnerDoes(t *testing.T) {
	env := valid()
	env["BUILD_TIMEOUT"] = "600"
	env["LOG_STREAM_INTERVAL"] = "2.5"
	c, err := config.Load(context.Background(), envconfig.MapLookuper(env))
	if err != nil {
		t.Fatal(err)
	}
	if c.BuildTimeout != 10*time.Minute || c.LogStreamInterval != 2500*time.Millisecond {
		t.Errorf("BUILD_TIMEOUT=600, LOG_STREAM_INTERVAL=2.5 read as %v and %v, want 10m and 2.5s", c.BuildTimeout, c.LogStreamInterval)
	}
}

func TestPlannerSettingsAreReadAndChecked(t *testing.T) {
	env := valid()
	env["TARGET_PLATFORM"] = "linux/arm64"
	env["BASE_IMAGE_MIRROR"] = "127.0.0.1:5000/standin"
	env["BASE_IMAGE_GO"] = "af-standin/golang:1.24"
	c, err := config.Load(context.Background(), envconfig.MapLookuper(env))
	if err != nil {
		t.Fatal(err)
	}
	if c.TargetPlatform != "linux/arm64" || c.BaseImages.Mirror != "127.0.0.1:5000/standin" || c.BaseImages.Go != "af-standin/golang:1.24" {
		t.Errorf("planner settings = %+v", c.PlannerDefaults)
	}
	env["TARGET_PLATFORM"] = "darwin/arm64"
	env["BASE_IMAGE_MIRROR"] = "mirror.example/"
	_, err = config.Load(context.Background(), envconfig.MapLookuper(env))
	if err == nil || !strings.Contains(err.Error(), "TARGET_PLATFORM") || !strings.Contains(err.Error(), "BASE_IMAGE_MIRROR") {
		t.Errorf("err = %v, want TARGET_PLATFORM and BASE_IMAGE_MIRROR refused by name", err)
	}
}
