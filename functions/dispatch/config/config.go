// Package config is dispatch's configuration, read from the environment with
// go-envconfig. Every variable X may instead be given as X_FILE, a path whose
// contents are the value: that is how secrets arrive from mounted Secrets,
// Lambda extensions or systemd credentials without entering the environment.
package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/alternatefutures/af-builder/shared/contract"
	"github.com/alternatefutures/af-builder/shared/redact"
	"github.com/alternatefutures/af-builder/shared/validate"
)

// Secret is a configuration value that must never be printed. Every way fmt,
// slog and encoding/json render it yields a mask; Reveal is the one way out.
type Secret struct{ v string }

// NewSecret wraps s.
func NewSecret(s string) Secret { return Secret{v: s} }

// Reveal returns the value, for the one place that uses it.
func (s Secret) Reveal() string { return s.v }

// Bytes returns the value as bytes, for HMAC keys.
func (s Secret) Bytes() []byte { return []byte(s.v) }

// IsSet reports whether a value was given.
func (s Secret) IsSet() bool { return s.v != "" }

const mask = "[REDACTED]"

func (s Secret) String() string               { return mask }
func (s Secret) GoString() string             { return mask }
func (s Secret) LogValue() slog.Value         { return slog.StringValue(mask) }
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + mask + `"`), nil }

// EnvDecode implements envconfig.Decoder. A trailing newline, which files
// written by editors and `echo` carry, is not part of the value.
func (s *Secret) EnvDecode(v string) error {
	s.v = strings.TrimRight(v, "\r\n")
	return nil
}

// Config is everything dispatch reads from the environment, apart from the
// Kubernetes executor's own variables (K8S_*, RUNNER_IMAGE, ...), which its
// package loads from the same lookuper.
type Config struct {
	// GitHub App: webhooks are verified with WebhookSecret, installation
	// tokens minted with the App's id and private key.
	WebhookSecret Secret `env:"GITHUB_WEBHOOK_SECRET"`
	AppID         int64  `env:"GITHUB_APP_ID"`
	AppPrivateKey Secret `env:"GITHUB_APP_PRIVATE_KEY"`
	// GitHubAPIURL is api.github.com, or https://HOST/api/v3 on GHES.
	GitHubAPIURL string `env:"GITHUB_API_URL, default=https://api.github.com"`
	// GitHubURL is where repositories are cloned from.
	GitHubURL string `env:"GITHUB_URL, default=https://github.com"`

	// CallbackURL is service-cloud-api's base URL; runners report to
	// CallbackURL + /internal/build-callback. A /v1/builds request may
	// override it with callbackBaseUrl.
	CallbackURL    string `env:"CALLBACK_URL"`
	CallbackSecret Secret `env:"CALLBACK_SECRET"`
	// CallbackPlainHTTPHosts lists the hosts (or .suffixes) that callbacks
	// and lookups may reach over plain http besides loopback, e.g.
	// "service-cloud-api,.svc.cluster.local"; passed on in the runner's
	// contract (validate.PlainHTTPHosts).
	CallbackPlainHTTPHosts string `env:"CALLBACK_PLAIN_HTTP_HOSTS"`

	// APIAuthSecret authenticates service-cloud-api's /v1 calls and signs
	// dispatch's subscription lookups.
	APIAuthSecret Secret `env:"API_AUTH_SECRET"`

	// Registry push credentials handed to every runner.
	RegistryUser  string `env:"REGISTRY_USER"`
	RegistryToken Secret `env:"REGISTRY_TOKEN"`

	// Subscriptions: exactly one of a static file (self-hosting, the demo)
	// or service-cloud-api's lookup endpoint.
	SubscriptionsFile string        `env:"SUBSCRIPTIONS_FILE"`
	SubscriptionsURL  string        `env:"SUBSCRIPTIONS_URL"`
	LookupTimeout     time.Duration `env:"SUBSCRIPTIONS_TIMEOUT, default=4s"`

	// Supersede cancels older unfinished push builds of the same service and
	// branch when a new one is created.
	Supersede bool `env:"SUPERSEDE, default=true"`
	// DryRun renders each Job and Secret (redacted) to stdout instead of
	// creating them.
	DryRun bool `env:"DRY_RUN, default=false"`
	// Executor runs the builds: "kubernetes" (a Job per build) or "local" (a
	// runner child process per build, against a local Docker engine).
	Executor string `env:"EXECUTOR, default=kubernetes"`

	// MaxWebhookBytes defaults to 25 MiB, above GitHub's 25 MB cap on a
	// delivery's payload, so no push GitHub sends is refused here. (Under
	// Lambda, AWS refuses requests over 6 MB before dispatch sees them.)
	MaxWebhookBytes int64 `env:"MAX_WEBHOOK_BYTES, default=26214400"`
	MaxAPIBytes     int64 `env:"MAX_API_BYTES, default=65536"`
	// WebhookBudget is how long a webhook may take before dispatch stops
	// starting new work: GitHub gives up after 10 s.
	WebhookBudget time.Duration `env:"WEBHOOK_BUDGET, default=8s"`
	// MaxInFlight is how many webhooks and /v1 requests one dispatch works
	// on at once; one more is answered 503 (Retry-After: 1) at once, so
	// GitHub's redelivery or the platform's retry finds room instead of
	// timing out. 0 means no limit.
	MaxInFlight int `env:"MAX_IN_FLIGHT, default=256"`

	// CancelCallbackTimeout bounds one CANCELED report dispatch sends
	// itself (cancel, supersede), retries included: a caller is waiting.
	CancelCallbackTimeout time.Duration `env:"CANCEL_CALLBACK_TIMEOUT, default=4s"`

	// ReapInterval is how often `dispatch serve` looks for builds whose
	// runner died without reporting, and reports them FAILED; 0 disables
	// it. Under Lambda a scheduled event triggers the same work instead.
	ReapInterval time.Duration `env:"REAP_INTERVAL, default=1m"`

	// The contract values every build gets (BUILD_TIMEOUT,
	// LOG_STREAM_INTERVAL, BUILD_NETWORK), passed whole to the core.
	contract.RunnerDefaults

	// Relay: every webhook delivery dispatch does not build from (and
	// pushes too with RELAY_PUSHES) is forwarded unchanged to RelayURL,
	// e.g. service-cloud-api's own webhook route, so one GitHub App
	// webhook URL serves both (package relay).
	RelayURL     string        `env:"RELAY_URL"`
	RelayPushes  bool          `env:"RELAY_PUSHES, default=false"`
	RelayTimeout time.Duration `env:"RELAY_TIMEOUT, default=5s"`

	// ReplayRetention is how long dispatched build ids are remembered past
	// their Jobs (package replay): a repeat within it creates nothing.
	ReplayRetention time.Duration `env:"REPLAY_RETENTION, default=5h"`

	LogLevel  string `env:"LOG_LEVEL, default=info"`
	LogFormat string `env:"LOG_FORMAT, default=json"`
}

// Load reads Config through lookup and validates it.
func Load(ctx context.Context, lookup envconfig.Lookuper) (Config, error) {
	c, err := Read(ctx, lookup)
	if err != nil {
		return c, err
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("dispatch config: %w", err)
	}
	return c, nil
}

// Read decodes Config without validating it, for commands (render) that
// need only part of it. lookup is wrapped so that X_FILE works for every X.
func Read(ctx context.Context, lookup envconfig.Lookuper) (Config, error) {
	fl := FileLookuper(lookup)
	al := withAliases(fl) // service-cloud-api's names for the same secrets (aliases.go)
	var c Config
	// BUILD_TIMEOUT=600 means what it means to the runner.
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &c, Lookuper: contract.Seconds(al)}); err != nil {
		return c, fmt.Errorf("dispatch config: %w", err)
	}
	if err := errors.Join(fl.Err(), al.Err()); err != nil {
		return c, fmt.Errorf("dispatch config: %w", err)
	}
	return c, nil
}

// Validate reports every problem at once, by variable name, never by value.
func (c Config) Validate() error {
	var errs []error
	bad := func(v, msg string) { errs = append(errs, fmt.Errorf("%s %s", v, msg)) }
	if c.Executor != "kubernetes" && c.Executor != "local" {
		bad("EXECUTOR", "must be kubernetes or local")
	}
	if !c.WebhookSecret.IsSet() {
		bad("GITHUB_WEBHOOK_SECRET", "is required (or GITHUB_APP_WEBHOOK_SECRET)")
	}
	if c.AppID <= 0 {
		bad("GITHUB_APP_ID", "is required")
	}
	if !c.AppPrivateKey.IsSet() {
		bad("GITHUB_APP_PRIVATE_KEY", "is required (or GITHUB_APP_PRIVATE_KEY_FILE, or GITHUB_APP_PRIVATE_KEY_B64)")
	}
	for v, u := range map[string]string{"GITHUB_API_URL": c.GitHubAPIURL, "GITHUB_URL": c.GitHubURL} {
		if err := validate.SourceURL(u); err != nil {
			bad(v, err.Error())
		}
	}
	plain, err := c.PlainHTTPHosts()
	if err != nil {
		bad("CALLBACK_PLAIN_HTTP_HOSTS", err.Error())
	}
	if c.CallbackURL == "" {
		bad("CALLBACK_URL", "is required")
	} else if err := validate.CallbackURLFor(c.CallbackURL, plain); err != nil {
		bad("CALLBACK_URL", err.Error())
	}
	if len(c.CallbackSecret.Reveal()) < 32 {
		bad("CALLBACK_SECRET", "(or JWT_SECRET) must be at least 32 bytes")
	}
	if len(c.APIAuthSecret.Reveal()) < 32 {
		bad("API_AUTH_SECRET", "must be at least 32 bytes")
	}
	if (c.RegistryUser == "") != !c.RegistryToken.IsSet() {
		bad("REGISTRY_USER", "and REGISTRY_TOKEN must be set together")
	}
	switch {
	case c.SubscriptionsFile == "" && c.SubscriptionsURL == "":
		bad("SUBSCRIPTIONS_FILE", "or SUBSCRIPTIONS_URL is required")
	case c.SubscriptionsFile != "" && c.SubscriptionsURL != "":
		bad("SUBSCRIPTIONS_FILE", "and SUBSCRIPTIONS_URL are exclusive")
	case c.SubscriptionsURL != "":
		if err := validate.CallbackURLFor(c.SubscriptionsURL, plain); err != nil {
			bad("SUBSCRIPTIONS_URL", err.Error())
		}
	}
	if c.MaxWebhookBytes < 1<<10 {
		bad("MAX_WEBHOOK_BYTES", "must be at least 1024")
	}
	if c.MaxAPIBytes < 1<<10 {
		bad("MAX_API_BYTES", "must be at least 1024")
	}
	if c.LookupTimeout <= 0 {
		bad("SUBSCRIPTIONS_TIMEOUT", "must be positive")
	}
	if c.CancelCallbackTimeout <= 0 {
		bad("CANCEL_CALLBACK_TIMEOUT", "must be positive")
	}
	// The runner's settings, TARGET_PLATFORM and BASE_IMAGE_* included.
	if err := c.RunnerDefaults.Validate(); err != nil {
		var es contract.Errors
		if errors.As(err, &es) {
			for _, fe := range es {
				bad(fe.Var, fe.Err.Error())
			}
		}
	}
	if c.MaxInFlight < 0 {
		bad("MAX_IN_FLIGHT", "must not be negative (0 means no limit)")
	}
	if c.ReapInterval < 0 {
		bad("REAP_INTERVAL", "must not be negative (0 disables the reaper)")
	}
	if c.ReplayRetention < 4*time.Hour {
		bad("REPLAY_RETENTION", "must be at least 4h, the callback token's lifetime")
	}
	if c.WebhookBudget <= 0 || c.WebhookBudget > 10*time.Second {
		bad("WEBHOOK_BUDGET", "must be positive and at most GitHub's 10s")
	}
	switch strings.ToLower(c.LogFormat) {
	case "json", "text":
	default:
		bad("LOG_FORMAT", "must be json or text")
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		bad("LOG_LEVEL", "must be debug, info, warn or error")
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return nil
}

// PlainHTTPHosts is CallbackPlainHTTPHosts parsed.
func (c Config) PlainHTTPHosts() (validate.PlainHTTPHosts, error) {
	return validate.ParsePlainHTTPHosts(c.CallbackPlainHTTPHosts)
}

// Level is LogLevel parsed; Validate has checked it.
func (c Config) Level() slog.Level {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.LogLevel))
	return lvl
}

// Secrets lists every configured secret value, for log redaction. The
// registry token is among Logins, which masks it in its Basic form too.
func (c Config) Secrets() []string {
	var out []string
	for _, s := range []Secret{c.WebhookSecret, c.AppPrivateKey, c.CallbackSecret, c.APIAuthSecret} {
		if s.IsSet() {
			out = append(out, s.Reveal())
		}
	}
	return out
}

// Logins lists the configured user/secret pairs (the registry's), for log
// redaction: the Docker config dispatch writes for a Job holds them as
// base64("user:token").
func (c Config) Logins() []redact.Login {
	if !c.RegistryToken.IsSet() {
		return nil
	}
	return []redact.Login{{User: c.RegistryUser, Secret: c.RegistryToken.Reveal()}}
}

// Lookuper is an envconfig.Lookuper that also remembers why a _FILE
// variable could not be read (Lookup itself cannot return an error).
type Lookuper struct {
	inner envconfig.Lookuper
	mu    sync.Mutex
	errs  []error
}

// FileLookuper resolves X from X, or else from the file named by X_FILE.
// Setting both is an error: which one wins would be a guess.
func FileLookuper(inner envconfig.Lookuper) *Lookuper { return &Lookuper{inner: inner} }

func (l *Lookuper) Lookup(key string) (string, bool) {
	v, ok := l.inner.Lookup(key)
	path, fromFile := l.inner.Lookup(key + "_FILE")
	fromFile = fromFile && path != ""
	switch {
	case ok && fromFile:
		l.fail(fmt.Errorf("%s and %s_FILE are both set", key, key))
		return v, ok
	case ok || !fromFile:
		return v, ok
	}
	b, err := os.ReadFile(path)
	if err != nil {
		// The path is not a secret; the file's contents are never quoted.
		l.fail(fmt.Errorf("%s_FILE: %w", key, err))
		return "", false
	}
	return strings.TrimRight(string(b), "\r\n"), true
}

func (l *Lookuper) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

// Err is every _FILE problem met so far.
func (l *Lookuper) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return errors.Join(l.errs...)
}
