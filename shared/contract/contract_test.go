package contract_test

import (
	"context"
	"encoding/base64"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/alternatefutures/af-builder/shared/contract"
	"github.com/alternatefutures/af-builder/shared/redact"
	"github.com/alternatefutures/af-builder/shared/token"
)

const (
	callbackToken = "am9iLTEyMy4xNzk1NTIxNjAw.cbSECRETsig0123456789abcdef"
	cloneToken    = "ghs_CloneSECRET0123456789abcdefABCDEF"
	registryToken = "ghp_RegistrySECRET0123456789abcdef"
	cloneURL      = "https://x-access-token:" + cloneToken + "@github.com/octo/hello.git"
	sha           = "0123456789abcdef0123456789abcdef01234567"

	// startCommand's standard base64 contains '/', so its URL-safe form
	// differs: both must decode.
	startCommand = `echo "ok?" && node server.js~`
)

var secrets = []string{callbackToken, cloneToken, registryToken}

// completeVars sets every variable of the contract, as dispatch would for a
// monorepo build with overrides.
func completeVars() map[string]string {
	return map[string]string{
		"BUILD_JOB_ID":        "clz9x8y7w0000abcd",
		"CALLBACK_URL":        "https://api.example/internal/build-callback",
		"CALLBACK_TOKEN":      callbackToken,
		"REPO_CLONE_URL":      cloneURL,
		"REPO_REF":            sha,
		"IMAGE_TAG":           "ghcr.io/af/clz9x8y7w0000abcd--octo-hello:0123456789ab",
		"GHCR_USER":           "af-bot",
		"GHCR_TOKEN":          registryToken,
		"ROOT_DIRECTORY":      "./apps/web/",
		"BUILD_COMMAND_B64":   base64.StdEncoding.EncodeToString([]byte("npm ci && npm run build\n")),
		"START_COMMAND_B64":   base64.RawURLEncoding.EncodeToString([]byte(startCommand)),
		"REPO_SOURCE_URL":     "https://github.com/octo/hello",
		"REPO_OWNER":          "octo",
		"REPO_NAME":           "hello",
		"DOCKER_HOST":         "tcp://localhost:2375",
		"BUILD_NETWORK":       "host",
		"LOG_STREAM_INTERVAL": "2s",
		"BUILD_TIMEOUT":       "45m",
		"BUILDER":             "template",
		"TARGET_PLATFORM":     "linux/arm64",
		"BASE_IMAGE_MIRROR":   "127.0.0.1:5000/standin",
		"BASE_IMAGE_NODE":     "af-standin/node:18-bookworm",

		"BUILD_BACKEND":        "buildkit",
		"BUILDKIT_HOST":        "unix:///run/buildkit/buildkitd.sock",
		"CACHE":                "on",
		"CACHE_REF":            "ghcr.io/af/caches/hello:buildcache",
		"CACHE_BRANCH":         "feature/login",
		"CACHE_DEFAULT_BRANCH": "main",
	}
}

// requiredVars is the smallest valid contract.
func requiredVars() map[string]string {
	return map[string]string{
		"BUILD_JOB_ID":   "job-1",
		"CALLBACK_URL":   "https://api.example/internal/build-callback",
		"CALLBACK_TOKEN": callbackToken,
		"REPO_CLONE_URL": cloneURL,
		"REPO_REF":       "main",
		"IMAGE_TAG":      "ghcr.io/af/u--octo-hello:abc123def456",
	}
}

func load(t *testing.T, vars map[string]string) (contract.Env, error) {
	t.Helper()
	return contract.Load(context.Background(), envconfig.MapLookuper(vars))
}

// fieldsOf returns the variables named by err, which must be contract.Errors.
func fieldsOf(t *testing.T, err error) []string {
	t.Helper()
	var es contract.Errors
	if !errors.As(err, &es) {
		t.Fatalf("error %v (%T) is not contract.Errors", err, err)
	}
	return es.Fields()
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestLoadCompleteEnv(t *testing.T) {
	got, err := load(t, completeVars())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := contract.Env{
		BuildJobID:    "clz9x8y7w0000abcd",
		CallbackURL:   "https://api.example/internal/build-callback",
		CallbackToken: callbackToken,
		RepoCloneURL:  cloneURL,
		RepoRef:       sha,
		ImageTag:      "ghcr.io/af/clz9x8y7w0000abcd--octo-hello:0123456789ab",
		RegistryUser:  "af-bot",
		RegistryToken: registryToken,
		RootDirectory: "apps/web",                // cleaned
		BuildCommand:  "npm ci && npm run build", // decoded, trailing newline dropped
		StartCommand:  startCommand,              // decoded from URL-safe base64
		RepoSourceURL: "https://github.com/octo/hello",
		RepoOwner:     "octo",
		RepoName:      "hello",
		DockerHost:    "tcp://localhost:2375",
		Builder:       "template",
		RunnerDefaults: contract.RunnerDefaults{
			BuildNetwork:      "host",
			LogStreamInterval: 2 * time.Second,
			BuildTimeout:      45 * time.Minute,
			PlannerDefaults: contract.PlannerDefaults{
				TargetPlatform: "linux/arm64",
				BaseImages:     contract.BaseImages{Mirror: "127.0.0.1:5000/standin", Node: "af-standin/node:18-bookworm"},
			},
		},

		BuildBackend:       "buildkit",
		BuildkitHost:       "unix:///run/buildkit/buildkitd.sock",
		Cache:              "on",
		CacheRef:           "ghcr.io/af/caches/hello:buildcache",
		CacheBranch:        "feature/login",
		CacheDefaultBranch: "main",
		// The _B64 fields are consumed by Load: only the decoded commands remain.
	}
	if got != want {
		t.Errorf("Load =\n%#v\nwant\n%#v", got, want)
	}
}

func TestLoadDefaults(t *testing.T) {
	got, err := load(t, requiredVars())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got.RootDirectory != "." {
		t.Errorf("RootDirectory = %q, want %q", got.RootDirectory, ".")
	}
	if got.LogStreamInterval != 5*time.Second {
		t.Errorf("LogStreamInterval = %v, want 5s", got.LogStreamInterval)
	}
	if got.BuildTimeout != 30*time.Minute {
		t.Errorf("BuildTimeout = %v, want 30m", got.BuildTimeout)
	}
	if got.BuildCommand != "" || got.StartCommand != "" || got.RegistryUser != "" || got.BuildNetwork != "" {
		t.Errorf("optional fields set without their variables: %#v", got)
	}
	if got.Builder != "auto" || got.TargetPlatform != "linux/amd64" || got.BaseImages != (contract.BaseImages{}) {
		t.Errorf("planner defaults = %q %q %+v, want auto, linux/amd64 and no base image settings", got.Builder, got.TargetPlatform, got.BaseImages)
	}
}

func TestLoadRefusesBadPlannerSettings(t *testing.T) {
	vars := requiredVars()
	vars["BUILDER"] = "buildpacks"
	vars["TARGET_PLATFORM"] = "windows/amd64"
	vars["BASE_IMAGE_MIRROR"] = "mirror.example/"
	vars["BASE_IMAGE_PYTHON"] = "Not An Image"
	_, err := load(t, vars)
	want := []string{"BUILDER", "TARGET_PLATFORM", "BASE_IMAGE_MIRROR", "BASE_IMAGE_PYTHON"}
	if got := fieldsOf(t, err); !sameSet(got, want) {
		t.Errorf("invalid fields = %v, want %v", got, want)
	}
}

func TestPlannerSettingsTravelToTheRunner(t *testing.T) {
	env, err := load(t, completeVars())
	if err != nil {
		t.Fatal(err)
	}
	back, err := load(t, envMap(env.Environ()))
	if err != nil {
		t.Fatalf("Load of Environ: %v", err)
	}
	if back.Builder != env.Builder || back.TargetPlatform != env.TargetPlatform || back.BaseImages != env.BaseImages {
		t.Errorf("after Environ and Load: %q %q %+v, want %q %q %+v", back.Builder, back.TargetPlatform, back.BaseImages,
			env.Builder, env.TargetPlatform, env.BaseImages)
	}
}

func envMap(kvs []string) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func TestLoadDecodesCommandsInEitherBase64Alphabet(t *testing.T) {
	std := base64.StdEncoding.EncodeToString([]byte(startCommand))
	if !strings.ContainsAny(std, "+/") {
		t.Fatalf("test command %q must exercise the alphabet difference; its base64 is %s", startCommand, std)
	}
	long := strings.Repeat("npm run build:workspace && ", 5) + "echo done"
	cases := map[string]struct{ b64, want string }{
		"standard, padded":                 {std, startCommand},
		"standard with a trailing newline": {std + "\n", startCommand},
		"URL-safe, unpadded":               {base64.RawURLEncoding.EncodeToString([]byte(startCommand)), startCommand},
		"URL-safe, padded":                 {base64.URLEncoding.EncodeToString([]byte(startCommand)), startCommand},
		"wrapped at 76 like base64(1)":     {wrap(base64.StdEncoding.EncodeToString([]byte(long)), 76), long},
		"of a file ending in a newline":    {base64.StdEncoding.EncodeToString([]byte(startCommand + "\n")), startCommand},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			vars := requiredVars()
			vars["START_COMMAND_B64"] = c.b64
			vars["BUILD_COMMAND_B64"] = c.b64
			env, err := load(t, vars)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if env.StartCommand != c.want || env.BuildCommand != c.want {
				t.Errorf("commands = %q, %q; want %q", env.BuildCommand, env.StartCommand, c.want)
			}
			if env.BuildCommandB64 != "" || env.StartCommandB64 != "" {
				t.Errorf("_B64 fields kept after decoding: %q, %q", env.BuildCommandB64, env.StartCommandB64)
			}
		})
	}
}

func wrap(s string, n int) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(s[:n] + "\n")
		s = s[n:]
	}
	b.WriteString(s + "\n")
	return b.String()
}

func TestLoadPlainCommands(t *testing.T) {
	vars := requiredVars()
	vars["BUILD_COMMAND"] = "  make build\n"
	vars["START_COMMAND"] = "./bin/server"
	env, err := load(t, vars)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if env.BuildCommand != "make build" || env.StartCommand != "./bin/server" {
		t.Errorf("commands = %q, %q", env.BuildCommand, env.StartCommand)
	}
}

func TestLoadBase64CommandWinsOverPlain(t *testing.T) {
	vars := requiredVars()
	vars["BUILD_COMMAND"] = "plain"
	vars["BUILD_COMMAND_B64"] = base64.StdEncoding.EncodeToString([]byte("encoded"))
	env, err := load(t, vars)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if env.BuildCommand != "encoded" {
		t.Errorf("BuildCommand = %q, want the _B64 value %q", env.BuildCommand, "encoded")
	}
}

func TestLoadNamesEachMissingRequiredVariable(t *testing.T) {
	for _, name := range []string{"BUILD_JOB_ID", "CALLBACK_URL", "CALLBACK_TOKEN", "REPO_CLONE_URL", "REPO_REF", "IMAGE_TAG"} {
		for _, how := range []string{"unset", "empty"} {
			t.Run(name+"/"+how, func(t *testing.T) {
				vars := completeVars()
				if how == "unset" {
					delete(vars, name)
				} else {
					vars[name] = ""
				}
				_, err := load(t, vars)
				if err == nil {
					t.Fatal("Load accepted the contract")
				}
				if got := fieldsOf(t, err); !slices.Equal(got, []string{name}) {
					t.Errorf("Fields() = %v, want [%s]", got, name)
				}
				if !strings.Contains(err.Error(), name+" is required") {
					t.Errorf("error %q does not say %s is required", err, name)
				}
			})
		}
	}
}

func TestLoadNamesTheBadVariable(t *testing.T) {
	cases := []struct {
		name, value, field string
	}{
		{"BUILD_JOB_ID", "../job", "BUILD_JOB_ID"},
		{"CALLBACK_URL", "http://api.example/cb", "CALLBACK_URL"},
		{"CALLBACK_TOKEN", "two words", "CALLBACK_TOKEN"},
		{"CALLBACK_TOKEN", strings.Repeat("t", 1025), "CALLBACK_TOKEN"},
		{"REPO_CLONE_URL", "https://github.com/octo/hello.git", "REPO_CLONE_URL"},
		{"REPO_REF", "main..dev", "REPO_REF"},
		{"IMAGE_TAG", "ubuntu:22.04", "IMAGE_TAG"},
		{"GHCR_USER", "", "GHCR_USER"},  // token without user
		{"GHCR_TOKEN", "", "GHCR_USER"}, // user without token: reported once, on the pair
		{"ROOT_DIRECTORY", "../outside", "ROOT_DIRECTORY"},
		{"BUILD_COMMAND_B64", "!!not base64!!", "BUILD_COMMAND_B64"},
		{"START_COMMAND_B64", base64.StdEncoding.EncodeToString([]byte("a\x00b")), "START_COMMAND_B64"},
		{"BUILD_COMMAND_B64", base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", 4097))), "BUILD_COMMAND_B64"},
		{"BUILD_JOB_ID", "cm9x2k7f.0001", "BUILD_JOB_ID"},
		{"CALLBACK_URL", "http://service-cloud-api:4000", "CALLBACK_URL"}, // no plain-http list given
		{"CALLBACK_PLAIN_HTTP_HOSTS", "*.svc", "CALLBACK_PLAIN_HTTP_HOSTS"},
		{"REPO_SOURCE_URL", "https://u:p@github.com/octo/hello", "REPO_SOURCE_URL"},
		{"REPO_OWNER", "-octo", "REPO_OWNER"},
		{"REPO_NAME", "a/b", "REPO_NAME"},
		{"BUILD_NETWORK", "container:other", "BUILD_NETWORK"},
		{"LOG_STREAM_INTERVAL", "100ms", "LOG_STREAM_INTERVAL"},
		{"LOG_STREAM_INTERVAL", "10m", "LOG_STREAM_INTERVAL"},
		{"BUILD_TIMEOUT", "5s", "BUILD_TIMEOUT"},
		{"BUILD_TIMEOUT", "7h", "BUILD_TIMEOUT"},
		// The callback token dies 4h after dispatch minted it: a build allowed
		// to run that long could never report how it ended.
		{"BUILD_TIMEOUT", "4h", "BUILD_TIMEOUT"},
		{"BUILD_TIMEOUT", "3h45m", "BUILD_TIMEOUT"},
		{"BUILD_BACKEND", "kaniko", "BUILD_BACKEND"},
		{"BUILDKIT_HOST", "", "BUILDKIT_HOST"}, // the buildkit backend needs one
		{"BUILDKIT_HOST", "/run/buildkit.sock", "BUILDKIT_HOST"},
		{"CACHE", "maybe", "CACHE"},
		{"CACHE_REF", "ghcr.io/af/cache", "CACHE_REF"}, // no tag
		{"CACHE_BRANCH", "a..b", "CACHE_BRANCH"},
		{"CACHE_DEFAULT_BRANCH", "-main", "CACHE_DEFAULT_BRANCH"},
	}
	for _, c := range cases {
		t.Run(c.name+"="+c.value[:min(len(c.value), 20)], func(t *testing.T) {
			vars := completeVars()
			vars[c.name] = c.value
			_, err := load(t, vars)
			if err == nil {
				t.Fatal("Load accepted the contract")
			}
			if got := fieldsOf(t, err); !slices.Equal(got, []string{c.field}) {
				t.Errorf("Fields() = %v, want [%s] (error: %v)", got, c.field, err)
			}
		})
	}
	t.Run("plain command with a NUL", func(t *testing.T) {
		vars := requiredVars()
		vars["BUILD_COMMAND"] = "npm ci\x00npm run build"
		_, err := load(t, vars)
		if got := fieldsOf(t, err); !slices.Equal(got, []string{"BUILD_COMMAND"}) {
			t.Errorf("Fields() = %v, want [BUILD_COMMAND]", got)
		}
	})
}

// What service-cloud-api sends a runner today must load unchanged.
func TestLoadAcceptsWhatServiceCloudAPISends(t *testing.T) {
	script := "npm ci\r\nnpm run build\r\necho done"
	vars := requiredVars()
	vars["CALLBACK_URL"] = "http://service-cloud-api:4000/internal/build-callback"
	vars["CALLBACK_PLAIN_HTTP_HOSTS"] = "service-cloud-api,.svc.cluster.local"
	vars["BUILD_COMMAND_B64"] = base64.StdEncoding.EncodeToString([]byte(script))
	vars["START_COMMAND_B64"] = "" // empty when unset
	vars["LOG_STREAM_INTERVAL"] = "5"
	vars[contract.TimeoutSecondsVar] = "1800"
	env, err := load(t, vars)
	if err != nil {
		t.Fatal(err)
	}
	if env.BuildCommand != "npm ci\nnpm run build\necho done" {
		t.Errorf("BuildCommand = %q, want the script with \\n line breaks", env.BuildCommand)
	}
	if env.StartCommand != "" {
		t.Errorf("StartCommand = %q, want empty", env.StartCommand)
	}
	if env.LogStreamInterval != 5*time.Second || env.BuildTimeout != 30*time.Minute {
		t.Errorf("intervals = %v, %v; want 5s, 30m", env.LogStreamInterval, env.BuildTimeout)
	}
	if !env.CallbackUsable() {
		t.Error("the in-cluster callback is not usable")
	}
	// The list travels on in the contract dispatch renders.
	var found bool
	for _, v := range env.Vars() {
		found = found || v.Name == "CALLBACK_PLAIN_HTTP_HOSTS" && v.Value == vars["CALLBACK_PLAIN_HTTP_HOSTS"]
	}
	if !found {
		t.Errorf("Vars() lost CALLBACK_PLAIN_HTTP_HOSTS: %v", env.Vars())
	}
}

func TestLoadBareSeconds(t *testing.T) {
	for _, c := range []struct {
		vars     map[string]string
		interval time.Duration
		timeout  time.Duration
	}{
		{map[string]string{"LOG_STREAM_INTERVAL": "2", "BUILD_TIMEOUT": "600"}, 2 * time.Second, 10 * time.Minute},
		{map[string]string{"LOG_STREAM_INTERVAL": "0.5", "BUILD_TIMEOUT": "45m"}, 500 * time.Millisecond, 45 * time.Minute},
		{map[string]string{contract.TimeoutSecondsVar: "900"}, 5 * time.Second, 15 * time.Minute},
		{map[string]string{contract.TimeoutSecondsVar: "900", "BUILD_TIMEOUT": "15m"}, 5 * time.Second, 15 * time.Minute},
	} {
		vars := requiredVars()
		maps.Copy(vars, c.vars)
		env, err := load(t, vars)
		if err != nil || env.LogStreamInterval != c.interval || env.BuildTimeout != c.timeout {
			t.Errorf("Load(%v) = %v, %v, %v; want %v, %v", c.vars, env.LogStreamInterval, env.BuildTimeout, err, c.interval, c.timeout)
		}
	}
	for _, bad := range []struct {
		vars  map[string]string
		field string
	}{
		{map[string]string{contract.TimeoutSecondsVar: "1800", "BUILD_TIMEOUT": "20m"}, "BUILD_TIMEOUT"}, // which one?
		{map[string]string{contract.TimeoutSecondsVar: "5"}, "BUILD_TIMEOUT"},                            // below 10s
		{map[string]string{contract.TimeoutSecondsVar: "86400"}, "BUILD_TIMEOUT"},                        // beyond the token's life
		{map[string]string{"LOG_STREAM_INTERVAL": "-5"}, "LOG_STREAM_INTERVAL"},
	} {
		vars := requiredVars()
		maps.Copy(vars, bad.vars)
		_, err := load(t, vars)
		if err == nil {
			t.Errorf("Load(%v) accepted", bad.vars)
		} else if got := fieldsOf(t, err); !slices.Equal(got, []string{bad.field}) {
			t.Errorf("Load(%v) named %v, want [%s] (%v)", bad.vars, got, bad.field, err)
		}
	}
}

func TestLoadBadDurationNamesTheVariable(t *testing.T) {
	for _, name := range []string{"LOG_STREAM_INTERVAL", "BUILD_TIMEOUT"} {
		for _, value := range []string{"soon", "30x", "5 s", "-"} {
			t.Run(name+"="+value, func(t *testing.T) {
				vars := completeVars()
				vars[name] = value
				env, err := load(t, vars)
				if err == nil {
					t.Fatal("Load accepted the contract")
				}
				if got := fieldsOf(t, err); !slices.Equal(got, []string{name}) {
					t.Errorf("Fields() = %v, want [%s] (error: %v)", got, name, err)
				}
				// Load returns what it could read, so the runner can still
				// report the failure.
				if !env.CallbackUsable() {
					t.Errorf("the callback is unusable after a bad %s: %#v", name, env)
				}
			})
		}
	}
}

func TestLoadNamesEveryBadVariableAtOnce(t *testing.T) {
	vars := completeVars()
	delete(vars, "BUILD_JOB_ID")
	vars["IMAGE_TAG"] = "ubuntu:22.04"
	vars["ROOT_DIRECTORY"] = "/etc"
	vars["REPO_NAME"] = "a b"
	vars["BUILD_TIMEOUT"] = "forever"
	vars["LOG_STREAM_INTERVAL"] = "1ms"
	_, err := load(t, vars)
	want := []string{"BUILD_JOB_ID", "IMAGE_TAG", "ROOT_DIRECTORY", "REPO_NAME", "BUILD_TIMEOUT", "LOG_STREAM_INTERVAL"}
	if got := fieldsOf(t, err); !sameSet(got, want) {
		t.Errorf("Fields() = %v, want %v", got, want)
	}
	for _, name := range want {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

func TestFieldErrorWrapsTheCause(t *testing.T) {
	_, err := load(t, map[string]string{})
	var es contract.Errors
	if !errors.As(err, &es) || len(es) == 0 {
		t.Fatalf("Load of an empty environment = %v", err)
	}
	fe := es[0]
	if fe.Unwrap() == nil || !errors.Is(fe, fe.Unwrap()) {
		t.Errorf("FieldError does not unwrap to its cause")
	}
	if got := fe.Error(); got != fe.Var+" "+fe.Unwrap().Error() {
		t.Errorf("FieldError = %q, want %q", got, fe.Var+" "+fe.Unwrap().Error())
	}
	if !strings.HasPrefix(err.Error(), "invalid build configuration: ") {
		t.Errorf("Errors = %q", err)
	}
}

func TestCallbackUsable(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(map[string]string)
		want   bool
	}{
		{"complete", func(map[string]string) {}, true},
		{"bad IMAGE_TAG", func(v map[string]string) { v["IMAGE_TAG"] = "ubuntu" }, true},
		{"bad REPO_CLONE_URL", func(v map[string]string) { v["REPO_CLONE_URL"] = "ftp://x" }, true},
		{"bad REPO_REF", func(v map[string]string) { v["REPO_REF"] = "-x" }, true},
		{"bad ROOT_DIRECTORY", func(v map[string]string) { v["ROOT_DIRECTORY"] = "../x" }, true},
		{"bad CALLBACK_URL", func(v map[string]string) { v["CALLBACK_URL"] = "http://api.example/cb" }, false},
		{"no CALLBACK_URL", func(v map[string]string) { delete(v, "CALLBACK_URL") }, false},
		{"bad BUILD_JOB_ID", func(v map[string]string) { v["BUILD_JOB_ID"] = "a/b" }, false},
		{"no CALLBACK_TOKEN", func(v map[string]string) { delete(v, "CALLBACK_TOKEN") }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vars := completeVars()
			c.mutate(vars)
			env, _ := load(t, vars)
			if got := env.CallbackUsable(); got != c.want {
				t.Errorf("CallbackUsable() = %v, want %v", got, c.want)
			}
		})
	}
}

func TestSecrets(t *testing.T) {
	env, err := load(t, completeVars())
	if err != nil {
		t.Fatal(err)
	}
	if got := env.Secrets(); !sameSet(got, secrets) {
		t.Errorf("Secrets() = %q, want %q", got, secrets)
	}

	t.Run("without a registry login", func(t *testing.T) {
		env, err := load(t, requiredVars())
		if err != nil {
			t.Fatal(err)
		}
		want := []string{callbackToken, cloneToken}
		if got := env.Secrets(); !sameSet(got, want) {
			t.Errorf("Secrets() = %q, want %q", got, want)
		}
	})
	t.Run("of an invalid contract", func(t *testing.T) {
		// A failed Load still returns what it read; redaction needs it most then.
		vars := completeVars()
		vars["REPO_CLONE_URL"] = "ftp://x-access-token:" + cloneToken + "@github.com/o/r.git"
		env, _ := load(t, vars)
		if got := env.Secrets(); !sameSet(got, secrets) {
			t.Errorf("Secrets() = %q, want %q", got, secrets)
		}
	})
	t.Run("of an empty Env", func(t *testing.T) {
		if got := (contract.Env{}).Secrets(); len(got) != 0 {
			t.Errorf("Secrets() = %q, want none", got)
		}
	})
}

func TestVarsMarksExactlyTheSecrets(t *testing.T) {
	env, err := load(t, completeVars())
	if err != nil {
		t.Fatal(err)
	}
	var secretNames []string
	for _, v := range env.Vars() {
		if v.Secret {
			secretNames = append(secretNames, v.Name)
		}
		for _, s := range secrets {
			if strings.Contains(v.Value, s) && !v.Secret {
				t.Errorf("%s carries a secret but is not marked Secret", v.Name)
			}
		}
	}
	if want := []string{"CALLBACK_TOKEN", "GHCR_TOKEN", "REPO_CLONE_URL"}; !sameSet(secretNames, want) {
		t.Errorf("secret vars = %v, want %v", secretNames, want)
	}
}

func TestVarsAreSortedAndCommandsEncoded(t *testing.T) {
	env, err := load(t, completeVars())
	if err != nil {
		t.Fatal(err)
	}
	vs := env.Vars()
	names := make([]string, len(vs))
	values := map[string]string{}
	for i, v := range vs {
		names[i] = v.Name
		values[v.Name] = v.Value
	}
	if !slices.IsSorted(names) {
		t.Errorf("Vars not sorted by name: %v", names)
	}
	if _, ok := values["BUILD_COMMAND"]; ok {
		t.Errorf("BUILD_COMMAND rendered in plain; commands travel base64-encoded")
	}
	raw, err := base64.StdEncoding.DecodeString(values["START_COMMAND_B64"])
	if err != nil || string(raw) != startCommand {
		t.Errorf("START_COMMAND_B64 = %q, decodes to %q (%v)", values["START_COMMAND_B64"], raw, err)
	}
}

// Dispatch renders Vars and the runner Loads them: whatever a valid Env
// holds must survive the trip unchanged.
func TestVarsRoundTripThroughLoad(t *testing.T) {
	quoting := requiredVars()
	quoting["BUILD_COMMAND_B64"] = base64.StdEncoding.EncodeToString([]byte(`sh -c 'echo "$HOME" \'; x=$(ls | wc -l) && echo ${x}' # ünïcode`))
	quoting["START_COMMAND"] = "\tnode  server.js --flag='a b'"
	quoting["ROOT_DIRECTORY"] = "packages/a b/c"
	quoting["LOG_STREAM_INTERVAL"] = "1.5s"
	quoting["BUILD_TIMEOUT"] = "1h2m3s"

	loopback := requiredVars()
	loopback["CALLBACK_URL"] = "http://127.0.0.1:8080/internal/build-callback" // a query is refused (a base URL)
	loopback["REPO_CLONE_URL"] = "http://x-access-token:" + cloneToken + "@localhost:9000/o/r.git"
	loopback["IMAGE_TAG"] = "127.0.0.1:5000/af/u--o-r:abc123def456"
	loopback["BUILD_NETWORK"] = "none"

	for name, vars := range map[string]map[string]string{
		"complete": completeVars(),
		"required": requiredVars(),
		"quoting":  quoting,
		"loopback": loopback,
	} {
		t.Run(name, func(t *testing.T) {
			env, err := load(t, vars)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			rendered := map[string]string{}
			for _, v := range env.Vars() {
				if _, dup := rendered[v.Name]; dup {
					t.Errorf("%s rendered twice", v.Name)
				}
				rendered[v.Name] = v.Value
			}
			again, err := load(t, rendered)
			if err != nil {
				t.Fatalf("Load(Vars()): %v", err)
			}
			if again != env {
				t.Errorf("round trip changed the Env:\n got %#v\nwant %#v", again, env)
			}
		})
	}
}

func TestEnvironMatchesVarsWithoutEmptyValues(t *testing.T) {
	for name, vars := range map[string]map[string]string{"complete": completeVars(), "required": requiredVars()} {
		t.Run(name, func(t *testing.T) {
			env, err := load(t, vars)
			if err != nil {
				t.Fatal(err)
			}
			environ := env.Environ()
			vs := env.Vars()
			if len(environ) != len(vs) {
				t.Fatalf("Environ has %d entries, Vars %d", len(environ), len(vs))
			}
			for i, kv := range environ {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" || v == "" {
					t.Errorf("entry %q is not KEY=non-empty value", kv)
				}
				if k != vs[i].Name || v != vs[i].Value {
					t.Errorf("entry %q does not match Vars %s=%s", kv, vs[i].Name, vs[i].Value)
				}
			}
		})
	}
}

func TestStringNeverShowsSecrets(t *testing.T) {
	env, err := load(t, completeVars())
	if err != nil {
		t.Fatal(err)
	}
	s := env.String()
	for _, secret := range secrets {
		if strings.Contains(s, secret) {
			t.Errorf("String() = %q shows a secret", s)
		}
	}
	if !strings.Contains(s, env.BuildJobID) || !strings.Contains(s, env.ImageTag) {
		t.Errorf("String() = %q does not identify the build", s)
	}
}

// The error of Load is logged and sent to the platform: it must name what
// is wrong without quoting a secret, also when the secret-bearing variable
// is the one that is wrong.
func TestErrorsNeverShowSecrets(t *testing.T) {
	cases := map[string]map[string]string{
		"clone URL with a bad scheme":    {"REPO_CLONE_URL": "ftp://x-access-token:" + cloneToken + "@github.com/o/r.git"},
		"clone URL over http":            {"REPO_CLONE_URL": "http://x-access-token:" + cloneToken + "@github.com/o/r.git"},
		"clone URL without a repository": {"REPO_CLONE_URL": "https://x-access-token:" + cloneToken + "@github.com"},
		"clone URL that does not parse":  {"REPO_CLONE_URL": "https://x-access-token:" + cloneToken + "@github.com/o/r.git\n"},
		"token pasted as the clone URL":  {"REPO_CLONE_URL": cloneToken},
		"callback token with a space":    {"CALLBACK_TOKEN": callbackToken + " x"},
		"callback token with a newline":  {"CALLBACK_TOKEN": callbackToken + "\n"},
		"registry token without a user":  {"GHCR_USER": ""},
		"callback URL with the token":    {"CALLBACK_URL": "https://t:" + callbackToken + "@api.example/cb"},
		"source URL with the token":      {"REPO_SOURCE_URL": "https://x-access-token:" + cloneToken + "@github.com/o/r"},
		"token as the image tag":         {"IMAGE_TAG": registryToken},
		"token as the timeout":           {"BUILD_TIMEOUT": registryToken},
	}
	for name, override := range cases {
		t.Run(name, func(t *testing.T) {
			vars := completeVars()
			for k, v := range override {
				vars[k] = v
			}
			_, err := load(t, vars)
			if err == nil {
				t.Fatal("Load accepted the contract")
			}
			for _, s := range secrets {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error shows a secret: %v", err)
				}
			}
		})
	}
}

func TestLoadAcceptsTheLongestBuildTimeout(t *testing.T) {
	vars := completeVars()
	vars["BUILD_TIMEOUT"] = contract.MaxBuildTimeout.String()
	env, err := load(t, vars)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if env.BuildTimeout != contract.MaxBuildTimeout || contract.MaxBuildTimeout+30*time.Minute > token.Lifetime {
		t.Errorf("BuildTimeout = %s, contract.MaxBuildTimeout %s, token lifetime %s", env.BuildTimeout, contract.MaxBuildTimeout, token.Lifetime)
	}
	vars["BUILD_TIMEOUT"] = "4h"
	if _, err := load(t, vars); err == nil || !strings.Contains(err.Error(), "BUILD_TIMEOUT must be between 10s and 3h30m") {
		t.Errorf("Load(BUILD_TIMEOUT=4h) = %v, want the bound named", err)
	}
}

func TestLoginsPairEachSecretWithItsUser(t *testing.T) {
	env, err := load(t, completeVars())
	if err != nil {
		t.Fatal(err)
	}
	want := []redact.Login{
		{User: env.RegistryUser, Secret: env.RegistryToken},
		{User: "x-access-token", Secret: cloneToken},
	}
	if got := env.Logins(); !reflect.DeepEqual(got, want) {
		t.Errorf("Logins() = %q, want %q", got, want)
	}
	if got := (contract.Env{}).Logins(); len(got) != 0 {
		t.Errorf("Logins() of an empty Env = %q, want none", got)
	}
}
