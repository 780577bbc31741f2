package buildreq_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alternatefutures/af-builder/functions/dispatch/buildreq"
)

const sha = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"

func params() buildreq.Params {
	return buildreq.Params{
		CloneToken:        "ghs_token",
		CallbackToken:     "cGF5bG9hZA.c2ln",
		CallbackBaseURL:   "https://api.example.com",
		GitHubURL:         "https://github.com",
		BuildTimeout:      30 * time.Minute,
		LogStreamInterval: 5 * time.Second,
	}
}

func request() buildreq.Request {
	return buildreq.Request{BuildJobID: "bj-1", InstallationID: 7, RepoOwner: "acme", RepoName: "web",
		CommitSHA: sha, ImageTag: "ghcr.io/acme/web:0d1a26e67d8f", RootDirectory: "./apps/web/"}
}

func TestEnvFromARequest(t *testing.T) {
	env, err := request().Env(params())
	if err != nil {
		t.Fatal(err)
	}
	if env.RepoCloneURL != "https://x-access-token:ghs_token@github.com/acme/web.git" ||
		env.RepoSourceURL != "https://github.com/acme/web" ||
		env.CallbackURL != "https://api.example.com/internal/build-callback" ||
		env.RootDirectory != "apps/web" || env.RepoRef != sha {
		t.Errorf("env = %+v", env)
	}
}

func TestDecodeAcceptsWhatServiceCloudAPISends(t *testing.T) {
	r, err := buildreq.Decode([]byte(`{"buildJobId":"bj-1","installationId":"12345","buildCommandB64":"bnBtIHJ1biBidWlsZA==","extra":"ignored"}`))
	if err != nil || r.InstallationID != 12345 || r.BuildCommandB64 == "" {
		t.Fatalf("%+v %v", r, err)
	}
	req := request()
	req.BuildCommandB64 = "bnBtIHJ1biBidWlsZA=="
	env, err := req.Env(params())
	if err != nil || env.BuildCommand != "npm run build" {
		t.Errorf("build command = %q, %v", env.BuildCommand, err)
	}
}

func TestProblemsNameTheRequestFields(t *testing.T) {
	r := buildreq.Request{BuildJobID: "bad id", RepoOwner: "-acme", RepoName: "", CommitSHA: "-x",
		ImageTag: "Ghcr.io/x", RootDirectory: "/etc", BuildCommandB64: "%%%", CallbackBaseURL: "ftp://x", Branch: "a..b"}
	err := r.Validate(params())
	var inv *buildreq.InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("err = %v", err)
	}
	got := inv.Fields()
	slices.Sort(got)
	want := []string{"branch", "buildCommandB64", "buildJobId", "callbackBaseUrl", "commitSha", "imageTag", "installationId", "repoName", "repoOwner", "rootDirectory"}
	if !slices.Equal(got, want) {
		t.Errorf("fields = %v\nwant     %v", got, want)
	}
}

func TestConfigurationProblemsAreNotTheCallers(t *testing.T) {
	p := params()
	p.CallbackBaseURL = ""
	err := request().Validate(p)
	var inv *buildreq.InvalidError
	if err == nil || errors.As(err, &inv) || !strings.Contains(err.Error(), "CALLBACK_URL") {
		t.Errorf("err = %v, want a configuration error naming CALLBACK_URL", err)
	}
}

func TestCallbackEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"https://api.example.com":                         "https://api.example.com/internal/build-callback",
		"https://api.example.com/":                        "https://api.example.com/internal/build-callback",
		"https://api.example.com/internal/build-callback": "https://api.example.com/internal/build-callback",
		"http://127.0.0.1:8080/prefix":                    "http://127.0.0.1:8080/prefix/internal/build-callback",
	} {
		if got := buildreq.CallbackEndpoint(in); got != want {
			t.Errorf("CallbackEndpoint(%q) = %q", in, got)
		}
	}
}

func TestBuildCarriesTheGroupingOnlyForASHA(t *testing.T) {
	r := request()
	r.ServiceID, r.Branch = "svc", "main"
	env, _ := r.Env(params())
	b := r.Build(env, "api")
	if b.ServiceID != "svc" || b.Branch != "main" || b.CommitSHA != sha || b.Trigger != "api" {
		t.Errorf("build = %+v", b)
	}
	r.CommitSHA = "main"
	if b := r.Build(env, "api"); b.CommitSHA != "" {
		t.Errorf("a branch ref was labelled as a commit: %q", b.CommitSHA)
	}
}

func TestBranchAndDefaultBranchNameTheLayerCache(t *testing.T) {
	req := request()
	req.Branch, req.DefaultBranch = "feature/login", "main"
	env, err := req.Env(params())
	if err != nil {
		t.Fatal(err)
	}
	if env.CacheBranch != "feature/login" || env.CacheDefaultBranch != "main" {
		t.Errorf("cache branch %q, default %q; want feature/login and main", env.CacheBranch, env.CacheDefaultBranch)
	}
	req.DefaultBranch = "a..b"
	var inv *buildreq.InvalidError
	if err := req.Validate(params()); !errors.As(err, &inv) || !slices.Equal(inv.Fields(), []string{"defaultBranch"}) {
		t.Errorf("bad default branch: %v, want a problem with defaultBranch", err)
	}
}
