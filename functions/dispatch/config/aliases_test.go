package config_test

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sethvargo/go-envconfig"

	"github.com/alternatefutures/af-builder/functions/dispatch/config"
)

// serviceCloudAPINames is valid() with every secret under the name
// service-cloud-api gives it.
func serviceCloudAPINames() map[string]string {
	env := valid()
	for _, k := range []string{"GITHUB_WEBHOOK_SECRET", "GITHUB_APP_PRIVATE_KEY", "CALLBACK_SECRET"} {
		v := env[k]
		delete(env, k)
		if k == "GITHUB_APP_PRIVATE_KEY" {
			v = base64.StdEncoding.EncodeToString([]byte(v))
		}
		env[config.AliasOf(k)] = v
	}
	return env
}

func TestServiceCloudAPIsSecretNamesAreAccepted(t *testing.T) {
	want, err := config.Load(context.Background(), envconfig.MapLookuper(valid()))
	if err != nil {
		t.Fatal(err)
	}
	got, err := config.Load(context.Background(), envconfig.MapLookuper(serviceCloudAPINames()))
	if err != nil {
		t.Fatal(err)
	}
	if got.WebhookSecret.Reveal() != want.WebhookSecret.Reveal() ||
		got.AppPrivateKey.Reveal() != want.AppPrivateKey.Reveal() ||
		got.CallbackSecret.Reveal() != want.CallbackSecret.Reveal() {
		t.Error("service-cloud-api's names did not give the same secrets (the _B64 key decoded to the PEM)")
	}
}

func TestServiceCloudAPINamesComeFromFilesToo(t *testing.T) {
	env := serviceCloudAPINames()
	p := filepath.Join(t.TempDir(), "jwt")
	os.WriteFile(p, []byte(strings.Repeat("j", 40)+"\n"), 0o600)
	delete(env, "JWT_SECRET")
	env["JWT_SECRET_FILE"] = p
	c, err := config.Load(context.Background(), envconfig.MapLookuper(env))
	if err != nil {
		t.Fatal(err)
	}
	if c.CallbackSecret.Reveal() != strings.Repeat("j", 40) {
		t.Error("JWT_SECRET_FILE was not read as the callback secret")
	}
}

func TestBothNamesForOneSecretIsAnError(t *testing.T) {
	for _, k := range []string{"GITHUB_WEBHOOK_SECRET", "GITHUB_APP_PRIVATE_KEY", "CALLBACK_SECRET"} {
		env := serviceCloudAPINames()
		env[k] = valid()[k]
		_, err := config.Load(context.Background(), envconfig.MapLookuper(env))
		if err == nil || !strings.Contains(err.Error(), k) || !strings.Contains(err.Error(), config.AliasOf(k)) {
			t.Errorf("%s and %s both set: %v; want refused naming both", k, config.AliasOf(k), err)
		}
		if err != nil && strings.Contains(err.Error(), valid()[k]) {
			t.Errorf("the error shows the secret: %v", err)
		}
	}
}

func TestABadBase64KeyIsRefusedWithoutShowingIt(t *testing.T) {
	for _, v := range []string{"!!not base64!!", base64.StdEncoding.EncodeToString([]byte("not a pem"))} {
		env := serviceCloudAPINames()
		env["GITHUB_APP_PRIVATE_KEY_B64"] = v
		_, err := config.Load(context.Background(), envconfig.MapLookuper(env))
		if err == nil || !strings.Contains(err.Error(), "GITHUB_APP_PRIVATE_KEY_B64") || strings.Contains(err.Error(), v) {
			t.Errorf("GITHUB_APP_PRIVATE_KEY_B64=%q: %v; want refused by name, value not shown", v, err)
		}
	}
}

func TestPlainHTTPCallbackNeedsTheHostListed(t *testing.T) {
	env := valid()
	env["CALLBACK_URL"] = "http://service-cloud-api:4000"
	env["SUBSCRIPTIONS_URL"] = "http://service-cloud-api.platform.svc.cluster.local:4000/internal/build-subscriptions"
	_, err := config.Load(context.Background(), envconfig.MapLookuper(env))
	if err == nil || !strings.Contains(err.Error(), "CALLBACK_URL") || !strings.Contains(err.Error(), "SUBSCRIPTIONS_URL") {
		t.Errorf("plain http without a list: %v; want both URLs refused", err)
	}
	env["CALLBACK_PLAIN_HTTP_HOSTS"] = "service-cloud-api,.svc.cluster.local"
	c, err := config.Load(context.Background(), envconfig.MapLookuper(env))
	if err != nil {
		t.Fatalf("with the hosts listed: %v", err)
	}
	if h, _ := c.PlainHTTPHosts(); !h.Allows("service-cloud-api") {
		t.Errorf("PlainHTTPHosts = %v", h)
	}
	env["CALLBACK_PLAIN_HTTP_HOSTS"] = "*"
	if _, err := config.Load(context.Background(), envconfig.MapLookuper(env)); err == nil || !strings.Contains(err.Error(), "CALLBACK_PLAIN_HTTP_HOSTS") {
		t.Errorf("a wildcard list: %v; want refused", err)
	}
}
