package validate_test

import (
	"net/url"
	"os/exec"
	"path"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/alternatefutures/af-builder/shared/validate"
)

// Branch names come from push payloads and requests. git itself is the
// oracle: a name we accept must be one git accepts (we may be stricter).
func FuzzBranchName(f *testing.F) {
	for _, s := range []string{"main", "feature/x", "a..b", "-x", "x.lock", "@", "a@{b", "a b", "a/./b", "ü", "x/", ".x"} {
		f.Add(s)
	}
	gitPath, err := exec.LookPath("git")
	f.Fuzz(func(t *testing.T, name string) {
		ours := validate.BranchName(name) == nil
		if !ours || err != nil || len(name) > 200 || strings.ContainsRune(name, 0) {
			return
		}
		if !gitAccepts(t, gitPath, name) {
			t.Fatalf("BranchName accepts %q, git check-ref-format refuses it", name)
		}
	})
}

// A root directory we accept stays inside the repository, whatever it is.
func FuzzRootDirectory(f *testing.F) {
	for _, s := range []string{"", ".", "apps/api", "../x", "a/../../b", "/etc", ".git/hooks", "a\\b", "./.git", "a//b/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		clean, err := validate.RootDirectory(s)
		if err != nil {
			return
		}
		if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") || path.Clean(clean) != clean {
			t.Fatalf("RootDirectory(%q) = %q: not a clean path inside the repository", s, clean)
		}
		if clean == ".git" || strings.HasPrefix(clean, ".git/") {
			t.Fatalf("RootDirectory(%q) = %q points into .git", s, clean)
		}
		again, err := validate.RootDirectory(clean)
		if err != nil || again != clean {
			t.Fatalf("RootDirectory is not idempotent: %q -> %q -> %q, %v", s, clean, again, err)
		}
	})
}

// A command we accept is UTF-8 without NUL, within the size limit, and
// its line breaks are all \n.
func FuzzCommand(f *testing.F) {
	for _, s := range []string{"npm run build", "a\nb", "x\r\n", "\x00", "  go build ./...  ", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := validate.Command(s)
		if err != nil {
			return
		}
		if utf8.RuneCountInString(out) > validate.MaxCommandChars || !utf8.ValidString(out) ||
			strings.ContainsRune(out, 0) || strings.ContainsRune(out, '\r') {
			t.Fatalf("Command(%q) = %q", s, out)
		}
	})
}

// URLs the runner sends its token to, and the clone URL's shape.
func FuzzURLs(f *testing.F) {
	for _, s := range []string{"https://api.example/cb", "http://127.0.0.1:1/cb", "https://u:p@h/x", "https://h/x?q#f", "http://10.0.0.1/", "https://x-access-token:t@github.com/o/r.git"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if validate.CallbackURL(s) == nil {
			u, err := url.Parse(s)
			if err != nil || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Host == "" {
				t.Fatalf("CallbackURL accepts %q", s)
			}
			if scheme := strings.ToLower(u.Scheme); scheme != "https" && scheme != "http" {
				t.Fatalf("CallbackURL accepts %q: not http(s)", s)
			}
		}
		if validate.CloneURL(s) == nil {
			if u, err := url.Parse(s); err != nil || u.User == nil {
				t.Fatalf("CloneURL accepts %q without credentials", s)
			}
		}
		if validate.SourceURL(s) == nil {
			if u, err := url.Parse(s); err != nil || u.User != nil {
				t.Fatalf("SourceURL accepts %q with credentials", s)
			}
		}
	})
}

// Image tags and the other names only need never to crash and to refuse
// what cannot be a single token on a command line.
func FuzzNames(f *testing.F) {
	for _, s := range []string{"ghcr.io/ns/app:v1", "octo", "a-b", "x y", "ghcr.io/ns/app@sha256:" + strings.Repeat("a", 64), "build-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for name, check := range map[string]func(string) error{
			"ImageTag": validate.ImageTag, "RepoOwner": validate.RepoOwner, "RepoName": validate.RepoName,
			"BuildJobID": validate.BuildJobID, "Ref": validate.Ref,
		} {
			if check(s) == nil && (s == "" || strings.ContainsAny(s, " \t\r\n\x00")) {
				t.Fatalf("%s accepts %q", name, s)
			}
		}
	})
}
