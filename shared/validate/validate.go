// Package validate checks the values users and the platform hand to a build,
// before any of them reaches git, a shell, a Kubernetes object or the engine.
// Every error names what is wrong in words a user can act on.
package validate

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/distribution/reference"
)

// MaxCommandBytes bounds a build or start command: longer ones are almost
// certainly a pasted script, which belongs in the repository.
const MaxCommandBytes = 4096

var (
	buildIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	shaRe     = regexp.MustCompile(`^[0-9a-f]{40}$`)
	ownerRe   = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$`)
	repoRe    = regexp.MustCompile(`^[A-Za-z0-9._-]{1,100}$`)
)

// BuildJobID allows what fits in a URL path, a label value and a log line
// without escaping.
func BuildJobID(s string) error {
	if !buildIDRe.MatchString(s) {
		return fmt.Errorf("must be 1-128 characters of letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	return nil
}

// IsLoopbackHost reports whether host (without port) names this machine, the
// only place plain http is acceptable.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CallbackURL must be https so the token is never sent in the clear; http is
// allowed for loopback only (local runs and tests).
func CallbackURL(s string) error {
	u, err := parseAbsURL(s)
	if err != nil {
		return err
	}
	if u.User != nil {
		return fmt.Errorf("must not carry credentials")
	}
	return checkScheme(u)
}

// CloneURL must be https (http for loopback) and carry the installation token
// as userinfo, as GitHub expects: https://x-access-token:<token>@github.com/o/r.git.
func CloneURL(s string) error {
	u, err := parseAbsURL(s)
	if err != nil {
		return err
	}
	if err := checkScheme(u); err != nil {
		return err
	}
	if u.User == nil || u.User.Username() == "" {
		return fmt.Errorf("must carry credentials (https://x-access-token:TOKEN@host/owner/repo.git)")
	}
	if _, ok := u.User.Password(); !ok {
		return fmt.Errorf("must carry a token as the userinfo password")
	}
	if u.Path == "" || u.Path == "/" {
		return fmt.Errorf("must name a repository")
	}
	return nil
}

// SourceURL is the clean repository URL used in OCI labels: it must not carry
// credentials, since labels are public.
func SourceURL(s string) error {
	u, err := parseAbsURL(s)
	if err != nil {
		return err
	}
	if u.User != nil {
		return fmt.Errorf("must not carry credentials (it is written into image labels)")
	}
	return checkScheme(u)
}

func parseAbsURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, fmt.Errorf("is empty")
	}
	u, err := url.Parse(s)
	if err != nil {
		// url.Error quotes the whole URL, token included: say less.
		return nil, fmt.Errorf("is not a valid URL")
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("has no host")
	}
	return u, nil
}

func checkScheme(u *url.URL) error {
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if IsLoopbackHost(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("must use https (http is allowed only for loopback hosts)")
	default:
		return fmt.Errorf("must use https, not %q", u.Scheme)
	}
}

// IsCommitSHA reports whether ref is a full 40-hex commit id.
func IsCommitSHA(ref string) bool { return shaRe.MatchString(ref) }

// Ref accepts a full commit SHA or a branch name that git's check-ref-format
// would accept, and never one that git could read as an option.
func Ref(ref string) error {
	if IsCommitSHA(ref) {
		return nil
	}
	return BranchName(ref)
}

// BranchName applies git-check-ref-format(1)'s rules to refs/heads/<name>.
func BranchName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("is empty")
	case len(name) > 255:
		return fmt.Errorf("is longer than 255 bytes")
	case strings.HasPrefix(name, "-"):
		return fmt.Errorf("must not start with '-'")
	case name == "@":
		return fmt.Errorf("must not be '@'")
	case strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/"):
		return fmt.Errorf("must not start or end with '/'")
	case strings.HasSuffix(name, "."):
		return fmt.Errorf("must not end with '.'")
	case strings.Contains(name, ".."):
		return fmt.Errorf("must not contain '..'")
	case strings.Contains(name, "@{"):
		return fmt.Errorf("must not contain '@{'")
	case strings.Contains(name, "//"):
		return fmt.Errorf("must not contain '//'")
	case !utf8.ValidString(name):
		return fmt.Errorf("must be valid UTF-8")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(" ~^:?*[\\", r) {
			return fmt.Errorf("must not contain %q", r)
		}
	}
	for _, comp := range strings.Split(name, "/") {
		if strings.HasPrefix(comp, ".") {
			return fmt.Errorf("no path component may start with '.'")
		}
		if strings.HasSuffix(comp, ".lock") {
			return fmt.Errorf("no path component may end with '.lock'")
		}
	}
	return nil
}

// ImageTag requires a fully qualified, lowercase reference with a tag and no
// digest: the tag is what the platform deploys, so it must be explicit.
func ImageTag(s string) error {
	if s == "" {
		return fmt.Errorf("is empty")
	}
	if s != strings.ToLower(s) {
		return fmt.Errorf("must be lowercase")
	}
	ref, err := reference.Parse(s)
	if err != nil {
		return fmt.Errorf("is not a valid image reference: %v", err)
	}
	named, ok := ref.(reference.Named)
	if !ok {
		return fmt.Errorf("has no repository name")
	}
	if _, ok := ref.(reference.Digested); ok {
		return fmt.Errorf("must not carry a digest; the digest is reported after the push")
	}
	if _, ok := ref.(reference.Tagged); !ok {
		return fmt.Errorf("must carry a tag (e.g. :%s)", "abc123def456")
	}
	if d := reference.Domain(named); !strings.ContainsAny(d, ".:") && d != "localhost" {
		return fmt.Errorf("must name its registry host (e.g. ghcr.io/...)")
	}
	return nil
}

// RootDirectory cleans a monorepo subdirectory and rejects anything that could
// leave the repository. The runner checks again after checkout, with symlinks
// resolved, since a repository can contain a link that points out of it.
func RootDirectory(s string) (string, error) {
	if s == "" {
		return ".", nil
	}
	if strings.ContainsRune(s, 0) || strings.Contains(s, "\\") {
		return "", fmt.Errorf("must be a plain relative path")
	}
	if path.IsAbs(s) {
		return "", fmt.Errorf("must be relative to the repository root, not %q", s)
	}
	for _, comp := range strings.Split(s, "/") {
		if comp == ".." {
			return "", fmt.Errorf("must not contain '..'")
		}
	}
	clean := path.Clean(s)
	if clean == ".git" || strings.HasPrefix(clean, ".git/") {
		return "", fmt.Errorf("must not point into .git")
	}
	if len(clean) > 1024 {
		return "", fmt.Errorf("is longer than 1024 bytes")
	}
	return clean, nil
}

// Command normalises a build or start override: one line of shell, bounded in
// size. A trailing newline (common when a value was pasted or base64-encoded
// from a file) is dropped; an inner one is refused rather than silently joined,
// because `a\nb` and `a && b` fail differently.
func Command(s string) (string, error) {
	s = strings.TrimRight(s, "\r\n")
	if len(s) > MaxCommandBytes {
		return "", fmt.Errorf("is %d bytes; at most %d are allowed", len(s), MaxCommandBytes)
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("must be valid UTF-8")
	}
	if strings.ContainsAny(s, "\r\n") {
		return "", fmt.Errorf("must be a single line; join steps with '&&'")
	}
	for _, r := range s {
		if r < 0x20 && r != '\t' || r == 0x7f {
			return "", fmt.Errorf("must not contain control character %q", r)
		}
	}
	return strings.TrimSpace(s), nil
}

// RepoOwner and RepoName follow GitHub's naming rules.
func RepoOwner(s string) error {
	if !ownerRe.MatchString(s) {
		return fmt.Errorf("is not a valid GitHub owner name")
	}
	return nil
}

// RepoName follows GitHub's naming rules.
func RepoName(s string) error {
	if !repoRe.MatchString(s) || s == "." || s == ".." {
		return fmt.Errorf("is not a valid GitHub repository name")
	}
	return nil
}

// ServiceID checks a service id: it groups builds for supersede and ends up
// in labels (hashed when needed) and annotations, so it must be printable
// and bounded. Empty is allowed here (a build outside any service); where
// one is required, the caller says so.
func ServiceID(s string) error {
	if len(s) > 253 || strings.ContainsFunc(s, unicode.IsControl) {
		return fmt.Errorf("must be at most 253 printable characters")
	}
	return nil
}
