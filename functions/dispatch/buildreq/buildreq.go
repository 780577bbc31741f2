// Package buildreq turns a build request — the body of POST /v1/builds, or
// a push matched to a service — into the runner's env contract, naming the
// request's own fields when something is wrong. All validation is the shared
// contract's; this package only maps between names.
package buildreq

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/alternatefutures/af-builder/functions/dispatch/executor"
	"github.com/alternatefutures/af-builder/shared/contract"
	"github.com/alternatefutures/af-builder/shared/validate"
)

// CallbackPath is service-cloud-api's callback route under its base URL.
const CallbackPath = "/internal/build-callback"

// Request is one build to start.
type Request struct {
	BuildJobID     string `json:"buildJobId"`
	InstallationID ID     `json:"installationId"`
	RepoOwner      string `json:"repoOwner"`
	RepoName       string `json:"repoName"`
	// CommitSHA should be a full SHA; a branch name is accepted and builds
	// the branch's head at clone time.
	CommitSHA     string `json:"commitSha"`
	ImageTag      string `json:"imageTag"`
	RootDirectory string `json:"rootDirectory,omitempty"`
	BuildCommand  string `json:"buildCommand,omitempty"`
	StartCommand  string `json:"startCommand,omitempty"`
	// The _B64 forms are what service-cloud-api sends today.
	BuildCommandB64 string `json:"buildCommandB64,omitempty"`
	StartCommandB64 string `json:"startCommandB64,omitempty"`
	// CallbackBaseURL overrides dispatch's CALLBACK_URL for this build.
	CallbackBaseURL string `json:"callbackBaseUrl,omitempty"`
	// ServiceID and Branch, when given, group the build with the service's
	// push builds, so a later push supersedes it.
	ServiceID string `json:"serviceId,omitempty"`
	Branch    string `json:"branch,omitempty"`
	// Builder chooses the runner's planner: auto (default), dockerfile,
	// template or nixpacks.
	Builder string `json:"builder,omitempty"`
	// DefaultBranch is the repository's default branch: a build of another
	// branch falls back to its layer cache (CACHE_DEFAULT_BRANCH).
	DefaultBranch string `json:"defaultBranch,omitempty"`
	// PushedAt orders push builds of a branch (set from the webhook, never
	// from an API body).
	PushedAt time.Time `json:"-"`
}

// ID is a GitHub numeric id that also accepts a JSON string, since
// JavaScript callers often send ids as strings.
type ID int64

func (i *ID) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(b, `"`))
	if s == "null" || s == "" {
		*i = 0
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return errNotNumber
	}
	*i = ID(n)
	return nil
}

var errNotNumber = errors.New("installationId must be a number")

// Decode reads a request body. Unknown fields are allowed: the API may send
// more than dispatch uses.
func Decode(body []byte) (Request, error) {
	var r Request
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&r); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) && ute.Field != "" {
			return r, &InvalidError{Problems: []Problem{{Field: ute.Field, Message: "has the wrong type"}}}
		}
		if errors.Is(err, errNotNumber) {
			return r, &InvalidError{Problems: []Problem{{Field: "installationId", Message: "must be a number"}}}
		}
		return r, &InvalidError{Problems: []Problem{{Field: "body", Message: "is not a JSON object"}}}
	}
	return r, nil
}

// Problem is one invalid field.
type Problem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// InvalidError is every problem with a request, by request field.
type InvalidError struct {
	Problems []Problem
}

func (e *InvalidError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Field + " " + p.Message
	}
	return "invalid build request: " + strings.Join(parts, "; ")
}

// Fields lists the offending fields.
func (e *InvalidError) Fields() []string {
	out := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		out[i] = p.Field
	}
	return out
}

// Params are the values dispatch adds to a request.
type Params struct {
	// CloneToken is the installation token for the repository.
	CloneToken string
	// CallbackToken is the build's callback token.
	CallbackToken string
	// CallbackBaseURL is dispatch's CALLBACK_URL (the request may override).
	CallbackBaseURL string
	// CallbackPlainHTTPHosts is dispatch's CALLBACK_PLAIN_HTTP_HOSTS: it
	// judges callbackBaseUrl and goes on in the runner's contract.
	CallbackPlainHTTPHosts string
	GitHubURL              string
	RegistryUser           string
	RegistryToken          string
	// Runner holds the contract values every build gets.
	Runner contract.RunnerDefaults
}

// Placeholder stands in for credentials when a request is only validated or
// rendered: it has the shape of a token, so validation is the same.
const Placeholder = "placeholder-credential"

// Validate checks a request as Env would, before any credential is minted.
func (r Request) Validate(p Params) error {
	_, err := r.Env(p)
	return err
}

// WithCredentials puts the build's real tokens into a contract Env made
// (and validated) with placeholders, so the contract is checked once,
// before any credential is minted. The tokens are dispatch's own and of
// the shape the placeholders had.
func (r Request) WithCredentials(env contract.Env, githubURL, cloneToken, callbackToken string) (contract.Env, error) {
	clone, _, err := repoURLs(githubURL, r.RepoOwner, r.RepoName, cloneToken)
	if err != nil {
		return env, err
	}
	env.RepoCloneURL, env.CallbackToken = clone, callbackToken
	return env, nil
}

// contractFields maps the contract's variables to the request fields a
// caller can fix. Variables not listed come from dispatch's configuration;
// their errors are dispatch's, not the caller's.
var contractFields = map[string]string{
	"BUILD_JOB_ID":      "buildJobId",
	"REPO_REF":          "commitSha",
	"IMAGE_TAG":         "imageTag",
	"ROOT_DIRECTORY":    "rootDirectory",
	"BUILD_COMMAND":     "buildCommand",
	"BUILD_COMMAND_B64": "buildCommandB64",
	"START_COMMAND":     "startCommand",
	"START_COMMAND_B64": "startCommandB64",
	"BUILDER":           "builder",
	"REPO_OWNER":        "repoOwner",
	"REPO_NAME":         "repoName",

	"CACHE_BRANCH":         "branch",
	"CACHE_DEFAULT_BRANCH": "defaultBranch",
}

// Env assembles and validates the contract. A problem with the request
// comes back as *InvalidError; anything else is a configuration problem.
// Credentials not given in p are Placeholder.
func (r Request) Env(p Params) (contract.Env, error) {
	if p.CloneToken == "" {
		p.CloneToken = Placeholder
	}
	if p.CallbackToken == "" {
		p.CallbackToken = Placeholder
	}
	var problems []Problem
	add := func(field, msg string) { problems = append(problems, Problem{Field: field, Message: msg}) }

	if r.InstallationID <= 0 {
		add("installationId", "is required")
	}
	if err := validate.ServiceID(r.ServiceID); err != nil {
		add("serviceId", err.Error())
	}
	if r.Branch != "" {
		if err := validate.BranchName(r.Branch); err != nil {
			add("branch", err.Error())
		}
	}
	// Owner and name are required here (the contract has them optional)
	// because the clone URL is made from them.
	if r.RepoOwner == "" {
		add("repoOwner", "is required")
	}
	if r.RepoName == "" {
		add("repoName", "is required")
	}
	base := p.CallbackBaseURL
	if r.CallbackBaseURL != "" {
		plain, _ := validate.ParsePlainHTTPHosts(p.CallbackPlainHTTPHosts) // a bad list is reported by the contract below
		if err := validate.CallbackURLFor(r.CallbackBaseURL, plain); err != nil {
			add("callbackBaseUrl", err.Error())
		}
		base = r.CallbackBaseURL
	}

	env := contract.Env{
		BuildJobID:             r.BuildJobID,
		CallbackURL:            CallbackEndpoint(base),
		CallbackToken:          p.CallbackToken,
		CallbackPlainHTTPHosts: p.CallbackPlainHTTPHosts,
		RepoRef:                r.CommitSHA,
		ImageTag:               r.ImageTag,
		RegistryUser:           p.RegistryUser,
		RegistryToken:          p.RegistryToken,
		RootDirectory:          r.RootDirectory,
		BuildCommand:           r.BuildCommand,
		StartCommand:           r.StartCommand,
		BuildCommandB64:        r.BuildCommandB64,
		StartCommandB64:        r.StartCommandB64,
		RepoOwner:              r.RepoOwner,
		RepoName:               r.RepoName,
		Builder:                r.Builder,
		RunnerDefaults:         p.Runner,
	}
	// The registry layer cache is per branch (runner/cache).
	env.CacheBranch, env.CacheDefaultBranch = r.Branch, r.DefaultBranch
	var configErrs []error
	if validate.RepoOwner(r.RepoOwner) == nil && validate.RepoName(r.RepoName) == nil {
		clone, source, err := repoURLs(p.GitHubURL, r.RepoOwner, r.RepoName, p.CloneToken)
		if err != nil {
			configErrs = append(configErrs, err)
		}
		env.RepoCloneURL, env.RepoSourceURL = clone, source
	}

	err := env.Normalize()
	var ce contract.Errors
	if errors.As(err, &ce) {
		for _, fe := range ce {
			field, ours := contractFields[fe.Var]
			switch {
			case ours:
				add(field, fe.Err.Error())
			case fe.Var == "CALLBACK_URL" && r.CallbackBaseURL != "":
				// Reported above against callbackBaseUrl.
			case fe.Var == "REPO_CLONE_URL" && env.RepoCloneURL == "":
				// Owner or name is wrong, and reported as such.
			default:
				configErrs = append(configErrs, fe)
			}
		}
	} else if err != nil {
		configErrs = append(configErrs, err)
	}
	if len(problems) > 0 {
		return env, &InvalidError{Problems: dedupe(problems)}
	}
	if len(configErrs) > 0 {
		return env, fmt.Errorf("dispatch configuration cannot make a valid build: %w", errors.Join(configErrs...))
	}
	return env, nil
}

// Build wraps the contract with the executor's grouping fields.
func (r Request) Build(env contract.Env, trigger string) executor.Build {
	b := executor.Build{Env: env, ServiceID: r.ServiceID, Branch: r.Branch, Trigger: trigger, PushedAt: r.PushedAt}
	if validate.IsCommitSHA(r.CommitSHA) {
		b.CommitSHA = r.CommitSHA
	}
	return b
}

// CallbackEndpoint is the runner's CALLBACK_URL for a base URL. A base that
// already names the callback route is taken as it is.
func CallbackEndpoint(base string) string {
	base = strings.TrimRight(base, "/")
	if base == "" || strings.HasSuffix(base, CallbackPath) {
		return base
	}
	return base + CallbackPath
}

func repoURLs(githubURL, owner, repo, token string) (clone, source string, err error) {
	u, err := url.Parse(strings.TrimRight(githubURL, "/"))
	if err != nil || u.Host == "" {
		return "", "", fmt.Errorf("GITHUB_URL %q is not a URL", githubURL)
	}
	u.User = nil
	u.Path += "/" + owner + "/" + repo
	source = u.String()
	u.Path += ".git"
	u.User = url.UserPassword("x-access-token", token)
	return u.String(), source, nil
}

func dedupe(ps []Problem) []Problem {
	seen := map[Problem]bool{}
	out := ps[:0]
	for _, p := range ps {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}
