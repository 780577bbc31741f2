// Package githubapp mints GitHub App installation tokens, each scoped to one
// repository with contents: read, which is all a clone needs. The App JWT
// (RS256) is made by ghinstallation; the token request by go-github.
package githubapp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	"github.com/google/go-github/v88/github"
)

// ErrNoAccess means the installation does not exist or cannot see the
// repository: a problem with the request, not with dispatch.
var ErrNoAccess = errors.New("the GitHub App installation cannot access the repository")

// Token is an installation token. Its String never shows the value.
type Token struct {
	Value     string
	ExpiresAt time.Time
}

func (t Token) String() string {
	return "installation token expiring " + t.ExpiresAt.UTC().Format(time.RFC3339)
}

// Options configure a Minter.
type Options struct {
	AppID      int64
	PrivateKey []byte // PEM, PKCS#1 or PKCS#8
	// APIURL is https://api.github.com, or https://HOST/api/v3 on GitHub
	// Enterprise Server, or a test server.
	APIURL string
	// Transport is the base transport; nil means http.DefaultTransport.
	Transport http.RoundTripper
	// Timeout bounds one token request.
	Timeout time.Duration
}

// Minter mints installation tokens.
type Minter struct {
	client *github.Client
}

// New parses the private key and prepares the client. It makes no request.
func New(o Options) (*Minter, error) {
	tr := o.Transport
	if tr == nil {
		tr = http.DefaultTransport
	}
	atr, err := ghinstallation.NewAppsTransport(tr, o.AppID, o.PrivateKey)
	if err != nil {
		// The parser's message describes the PEM's shape, never its bytes.
		return nil, fmt.Errorf("github app %d: private key: %w", o.AppID, err)
	}
	base := strings.TrimRight(o.APIURL, "/")
	if u, err := url.Parse(base); err != nil || u.Host == "" {
		return nil, fmt.Errorf("github app: API URL %q is not a URL", o.APIURL)
	}
	atr.BaseURL = base
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	api := base + "/"
	client, err := github.NewClient(
		github.WithTransport(atr),
		github.WithTimeout(timeout),
		github.WithURLs(&api, nil),
		github.WithUserAgent("af-dispatch"),
	)
	if err != nil {
		return nil, fmt.Errorf("github app: client: %w", err)
	}
	return &Minter{client: client}, nil
}

// RepoToken mints a token for exactly owner/repo with contents: read. An
// installation that cannot see owner/repo, including one on another
// account whose repository has the same name, is ErrNoAccess.
func (m *Minter) RepoToken(ctx context.Context, installationID int64, owner, repo string) (Token, error) {
	tok, _, err := m.client.Apps.CreateInstallationToken(ctx, installationID, &github.InstallationTokenOptions{
		// GitHub wants the bare name here; the installation fixes the owner.
		Repositories: []string{repo},
		Permissions:  &github.InstallationPermissions{Contents: github.Ptr("read")},
	})
	if err != nil {
		var er *github.ErrorResponse
		if errors.As(err, &er) && er.Response != nil {
			switch er.Response.StatusCode {
			case http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusForbidden:
				return Token{}, fmt.Errorf("installation %d, repository %s/%s: %w (GitHub answered %d: %s)",
					installationID, owner, repo, ErrNoAccess, er.Response.StatusCode, er.Message)
			}
		}
		return Token{}, fmt.Errorf("mint installation token for %s/%s (installation %d): %w", owner, repo, installationID, err)
	}
	if tok.GetToken() == "" {
		return Token{}, fmt.Errorf("mint installation token for %s/%s: GitHub returned no token", owner, repo)
	}
	// The request names the repository without its owner (the installation
	// fixes that), so an installation on another account that holds a
	// repository of the same name gets a token for that one. Only the
	// answer says which repository the token is for.
	if granted := grantedRepos(tok); len(granted) != 1 || !strings.EqualFold(granted[0], owner+"/"+repo) {
		what := "no repository"
		if len(granted) > 0 {
			what = strings.Join(granted, ", ")
		}
		return Token{}, fmt.Errorf("installation %d grants %s, not %s/%s: %w", installationID, what, owner, repo, ErrNoAccess)
	}
	return Token{Value: tok.GetToken(), ExpiresAt: tok.GetExpiresAt().Time}, nil
}

func grantedRepos(tok *github.InstallationToken) []string {
	var out []string
	for _, r := range tok.GetRepositories() {
		out = append(out, r.GetFullName())
	}
	return out
}
