// Package contract is the runner's environment contract: the variables
// dispatch (or any executor) sets for one build, and how they are checked.
// Both sides use this one definition, so a new variable cannot be set by one
// and missed by the other.
package contract

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/alternatefutures/af-builder/shared/redact"
	"github.com/alternatefutures/af-builder/shared/token"
	"github.com/alternatefutures/af-builder/shared/validate"
)

// Env is one build's configuration. Fields are validated by Validate, not by
// envconfig tags, so that every problem is reported at once and by name.
type Env struct {
	BuildJobID    string `env:"BUILD_JOB_ID"`
	CallbackURL   string `env:"CALLBACK_URL"`
	CallbackToken string `env:"CALLBACK_TOKEN"`
	// CallbackPlainHTTPHosts lists the hosts (or .suffixes) CALLBACK_URL may
	// reach over plain http besides loopback, as dispatch's operator set it
	// (validate.PlainHTTPHosts).
	CallbackPlainHTTPHosts string `env:"CALLBACK_PLAIN_HTTP_HOSTS"`
	RepoCloneURL           string `env:"REPO_CLONE_URL"`
	RepoRef                string `env:"REPO_REF"`
	ImageTag               string `env:"IMAGE_TAG"`
	RegistryUser           string `env:"GHCR_USER"`
	RegistryToken          string `env:"GHCR_TOKEN"`
	RootDirectory          string `env:"ROOT_DIRECTORY, default=."`
	BuildCommand           string `env:"BUILD_COMMAND"`
	StartCommand           string `env:"START_COMMAND"`
	// The _B64 forms are what service-cloud-api sends today; they win over the
	// plain ones when both are set.
	BuildCommandB64 string `env:"BUILD_COMMAND_B64"`
	StartCommandB64 string `env:"START_COMMAND_B64"`
	RepoSourceURL   string `env:"REPO_SOURCE_URL"`
	RepoOwner       string `env:"REPO_OWNER"`
	RepoName        string `env:"REPO_NAME"`
	DockerHost      string `env:"DOCKER_HOST"`
	// Builder chooses the planner: auto, dockerfile, template or nixpacks.
	Builder string `env:"BUILDER, default=auto"`
	// RunnerDefaults are the variables an operator sets once for every
	// build (timeouts, network, platform, base images): declared, with
	// their defaults, in one place that dispatch's configuration embeds too.
	RunnerDefaults
	// BuildBackend is what builds and pushes the image: BackendDocker (the
	// Engine API at DOCKER_HOST; empty means this) or BackendBuildKit (a
	// buildkitd at BUILDKIT_HOST).
	BuildBackend string `env:"BUILD_BACKEND"`
	BuildkitHost string `env:"BUILDKIT_HOST"`
	// Cache is "off" to build without the registry layer cache; empty or
	// "on" imports it before the build and exports it after a success.
	Cache string `env:"CACHE"`
	// CacheRef is where the registry cache lives, "repository:tag"; empty
	// means the image's repository with the tag "buildcache". Branches
	// other than the default get their own tag derived from this one.
	CacheRef string `env:"CACHE_REF"`
	// CacheBranch is the branch being built and CacheDefaultBranch the
	// repository's default one: a branch's first build imports the default
	// branch's cache. Both empty: one cache for every build of the image.
	CacheBranch        string `env:"CACHE_BRANCH"`
	CacheDefaultBranch string `env:"CACHE_DEFAULT_BRANCH"`
	// ReportedFile, when set, is a file the runner writes ReportedMark to
	// once SUCCEEDED is delivered (PodReportedFile on Kubernetes).
	ReportedFile string `env:"REPORTED_FILE"`
}

// The build backends (BUILD_BACKEND).
const (
	BackendDocker   = "docker"
	BackendBuildKit = "buildkit"
)

// Backend is BuildBackend with its default applied.
func (e Env) Backend() string {
	if e.BuildBackend == "" {
		return BackendDocker
	}
	return e.BuildBackend
}

// CacheEnabled reports whether the registry layer cache is used.
func (e Env) CacheEnabled() bool { return e.Cache != "off" }

// MaxBuildTimeout keeps a build inside its callback token's lifetime: the
// token is minted at dispatch, and the runner needs time after the timeout
// (and the Job time before it starts) to send the terminal status with it.
const MaxBuildTimeout = token.Lifetime - 30*time.Minute

// FieldError names the variable that is wrong.
type FieldError struct {
	Var string
	Err error
}

func (e *FieldError) Error() string { return e.Var + " " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Errors is every problem found in one Env.
type Errors []*FieldError

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return "invalid build configuration: " + strings.Join(parts, "; ")
}

// Fields lists the names of the offending variables.
func (es Errors) Fields() []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Var
	}
	return out
}

// Load reads the contract from lookup (envconfig.OsLookuper() in the runner)
// and validates it. It returns the Env it could read even when validation
// fails, so the caller can still report the failure through the callback.
func Load(ctx context.Context, lookup envconfig.Lookuper) (Env, error) {
	// envconfig stops at the first value it cannot decode (only durations
	// can fail). Name that variable, read the contract again with it unset
	// (so it takes its default) and go on, so that every problem is reported
	// at once. Values are never echoed: the decoder's message quotes them.
	var unread Errors
	lookup, unread = withSeconds(lookup)
	skip := map[string]bool{}
	for {
		var e Env
		err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &e, Lookuper: skipLookuper{lookup, skip}})
		if err == nil {
			var errs Errors
			if nerr := e.Normalize(); nerr != nil && !errors.As(nerr, &errs) {
				return e, nerr
			}
			if errs = append(unread, errs...); len(errs) > 0 {
				return e, errs
			}
			return e, nil
		}
		v, msg := undecodable(err)
		if v == "" || skip[v] {
			return e, append(unread, &FieldError{Var: "environment", Err: errors.New("could not be read")})
		}
		skip[v] = true
		unread = append(unread, &FieldError{Var: v, Err: errors.New(msg)})
	}
}

// skipLookuper hides the variables that could not be decoded.
type skipLookuper struct {
	l    envconfig.Lookuper
	skip map[string]bool
}

func (s skipLookuper) Lookup(key string) (string, bool) {
	if s.skip[key] {
		return "", false
	}
	return s.l.Lookup(key)
}

// undecodable names the variable behind an envconfig decode error, which
// starts with the Go field's name, and says what it should look like.
func undecodable(err error) (string, string) {
	// envconfig prefixes the message with the path of Go field names
	// ("RunnerDefaults: BuildTimeout: ..."); the leaf names the variable.
	msg := err.Error()
	for _, f := range reflect.VisibleFields(reflect.TypeFor[Env]()) {
		key, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		if key == "" || !strings.HasPrefix(msg, f.Name+":") && !strings.Contains(msg, ": "+f.Name+":") {
			continue
		}
		if f.Type == reflect.TypeFor[time.Duration]() {
			return strings.TrimSpace(key), "is not a duration like 5s or 30m, nor a number of seconds"
		}
		return strings.TrimSpace(key), "could not be read"
	}
	return "", ""
}

// Normalize validates every field, decodes the _B64 commands into
// BuildCommand/StartCommand and cleans RootDirectory.
func (e *Env) Normalize() error {
	var errs Errors
	check := func(v string, err error) {
		if err != nil {
			errs = append(errs, &FieldError{Var: v, Err: err})
		}
	}
	required := func(v, val string, fn func(string) error) {
		if val == "" {
			check(v, errors.New("is required"))
			return
		}
		check(v, fn(val))
	}
	required("BUILD_JOB_ID", e.BuildJobID, validate.BuildJobID)
	plain, err := validate.ParsePlainHTTPHosts(e.CallbackPlainHTTPHosts)
	check("CALLBACK_PLAIN_HTTP_HOSTS", err)
	required("CALLBACK_URL", e.CallbackURL, func(s string) error { return validate.CallbackURLFor(s, plain) })
	required("CALLBACK_TOKEN", e.CallbackToken, func(s string) error {
		if len(s) > 1024 || strings.ContainsAny(s, " \r\n\t") {
			return errors.New("is not a token")
		}
		return nil
	})
	required("REPO_CLONE_URL", e.RepoCloneURL, validate.CloneURL)
	required("REPO_REF", e.RepoRef, validate.Ref)
	required("IMAGE_TAG", e.ImageTag, validate.ImageTag)
	if (e.RegistryUser == "") != (e.RegistryToken == "") {
		check("GHCR_USER", errors.New("and GHCR_TOKEN must be set together"))
	}
	root, err := validate.RootDirectory(e.RootDirectory)
	check("ROOT_DIRECTORY", err)
	if err == nil {
		e.RootDirectory = root
	}
	e.BuildCommand = e.command("BUILD_COMMAND", e.BuildCommand, e.BuildCommandB64, check)
	e.StartCommand = e.command("START_COMMAND", e.StartCommand, e.StartCommandB64, check)
	e.BuildCommandB64, e.StartCommandB64 = "", ""
	if e.RepoSourceURL != "" {
		check("REPO_SOURCE_URL", validate.SourceURL(e.RepoSourceURL))
	}
	if e.RepoOwner != "" {
		check("REPO_OWNER", validate.RepoOwner(e.RepoOwner))
	}
	if e.RepoName != "" {
		check("REPO_NAME", validate.RepoName(e.RepoName))
	}
	if e.Builder == "" {
		e.Builder = validate.BuilderAuto
	}
	check("BUILDER", validate.Builder(e.Builder))
	e.RunnerDefaults.normalize(check)
	switch e.BuildBackend {
	case "", BackendDocker:
	case BackendBuildKit:
		if e.BuildkitHost == "" {
			check("BUILDKIT_HOST", errors.New("is required when BUILD_BACKEND is buildkit"))
		}
	default:
		check("BUILD_BACKEND", errors.New("must be docker or buildkit"))
	}
	if e.BuildkitHost != "" {
		if u, err := url.Parse(e.BuildkitHost); err != nil || u.Scheme == "" {
			check("BUILDKIT_HOST", errors.New("must be an address like unix:///run/buildkit/buildkitd.sock or tcp://127.0.0.1:1234"))
		}
	}
	switch e.Cache {
	case "", "on", "off":
	default:
		check("CACHE", errors.New("must be on or off"))
	}
	if e.CacheRef != "" {
		check("CACHE_REF", validate.ImageTag(e.CacheRef))
	}
	if e.CacheBranch != "" {
		check("CACHE_BRANCH", validate.BranchName(e.CacheBranch))
	}
	if e.CacheDefaultBranch != "" {
		check("CACHE_DEFAULT_BRANCH", validate.BranchName(e.CacheDefaultBranch))
	}
	if e.ReportedFile != "" && !filepath.IsAbs(e.ReportedFile) {
		check("REPORTED_FILE", errors.New("must be an absolute path"))
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

func (e *Env) command(v, plain, b64 string, check func(string, error)) string {
	if b64 != "" {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
		if err != nil {
			// URL-safe encoders exist upstream too; accept either alphabet.
			raw, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(strings.TrimSpace(b64), "="))
		}
		if err != nil {
			check(v+"_B64", errors.New("is not valid base64"))
			return ""
		}
		plain, v = string(raw), v+"_B64"
	}
	if plain == "" {
		return ""
	}
	out, err := validate.Command(plain)
	check(v, err)
	return out
}

// CallbackUsable reports whether enough of the contract is valid to report a
// failure to the platform.
func (e Env) CallbackUsable() bool {
	plain, err := validate.ParsePlainHTTPHosts(e.CallbackPlainHTTPHosts)
	return err == nil && validate.BuildJobID(e.BuildJobID) == nil &&
		validate.CallbackURLFor(e.CallbackURL, plain) == nil &&
		e.CallbackToken != ""
}

// Secrets returns every secret value in the contract, for redaction.
func (e Env) Secrets() []string {
	out := []string{e.CallbackToken, e.RegistryToken}
	if u, err := url.Parse(e.RepoCloneURL); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok {
			out = append(out, p)
		}
	}
	var nonEmpty []string
	for _, s := range out {
		if s != "" {
			nonEmpty = append(nonEmpty, s)
		}
	}
	return nonEmpty
}

// Logins returns every user name and secret pair in the contract (the
// registry's, and the clone URL's x-access-token), so that their Basic-auth
// form is masked too.
func (e Env) Logins() []redact.Login {
	var out []redact.Login
	if e.RegistryToken != "" {
		out = append(out, redact.Login{User: e.RegistryUser, Secret: e.RegistryToken})
	}
	if u, err := url.Parse(e.RepoCloneURL); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			out = append(out, redact.Login{User: u.User.Username(), Secret: p})
		}
	}
	return out
}

// Var is one environment variable of the contract as an executor sets it.
type Var struct {
	Name   string
	Value  string
	Secret bool // must come from a secret store, never a plain env value
}

// Vars renders the contract as the variables an executor sets for the runner.
// Empty optional values are left out. Commands are passed base64-encoded so
// that quoting survives every hop.
func (e Env) Vars() []Var {
	vs := []Var{
		{Name: "BUILD_JOB_ID", Value: e.BuildJobID},
		{Name: "CALLBACK_URL", Value: e.CallbackURL},
		{Name: "CALLBACK_TOKEN", Value: e.CallbackToken, Secret: true},
		{Name: "CALLBACK_PLAIN_HTTP_HOSTS", Value: e.CallbackPlainHTTPHosts},
		{Name: "REPO_CLONE_URL", Value: e.RepoCloneURL, Secret: true},
		{Name: "REPO_REF", Value: e.RepoRef},
		{Name: "IMAGE_TAG", Value: e.ImageTag},
		{Name: "GHCR_USER", Value: e.RegistryUser},
		{Name: "GHCR_TOKEN", Value: e.RegistryToken, Secret: true},
		{Name: "ROOT_DIRECTORY", Value: e.RootDirectory},
		{Name: "REPO_SOURCE_URL", Value: e.RepoSourceURL},
		{Name: "REPO_OWNER", Value: e.RepoOwner},
		{Name: "REPO_NAME", Value: e.RepoName},
		{Name: "DOCKER_HOST", Value: e.DockerHost},
		{Name: "BUILD_NETWORK", Value: e.BuildNetwork},
		{Name: "BUILDER", Value: e.Builder},
		{Name: "TARGET_PLATFORM", Value: e.TargetPlatform},
		{Name: "BUILD_BACKEND", Value: e.BuildBackend},
		{Name: "BUILDKIT_HOST", Value: e.BuildkitHost},
		{Name: "CACHE", Value: e.Cache},
		{Name: "CACHE_REF", Value: e.CacheRef},
		{Name: "CACHE_BRANCH", Value: e.CacheBranch},
		{Name: "CACHE_DEFAULT_BRANCH", Value: e.CacheDefaultBranch},
		{Name: "REPORTED_FILE", Value: e.ReportedFile},
	}
	vs = append(vs, e.BaseImages.vars()...)
	if e.BuildCommand != "" {
		vs = append(vs, Var{Name: "BUILD_COMMAND_B64", Value: base64.StdEncoding.EncodeToString([]byte(e.BuildCommand))})
	}
	if e.StartCommand != "" {
		vs = append(vs, Var{Name: "START_COMMAND_B64", Value: base64.StdEncoding.EncodeToString([]byte(e.StartCommand))})
	}
	if e.LogStreamInterval != 0 {
		vs = append(vs, Var{Name: "LOG_STREAM_INTERVAL", Value: e.LogStreamInterval.String()})
	}
	if e.BuildTimeout != 0 {
		vs = append(vs, Var{Name: "BUILD_TIMEOUT", Value: e.BuildTimeout.String()})
	}
	out := vs[:0]
	for _, v := range vs {
		if v.Value != "" {
			out = append(out, v)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Environ renders Vars as KEY=VALUE pairs for a child process.
func (e Env) Environ() []string {
	vs := e.Vars()
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Name + "=" + v.Value
	}
	return out
}

// String never prints secrets, so an Env can be logged safely by mistake.
func (e Env) String() string {
	return fmt.Sprintf("build %s ref %s image %s root %s", e.BuildJobID, e.RepoRef, e.ImageTag, e.RootDirectory)
}
