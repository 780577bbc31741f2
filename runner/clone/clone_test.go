package clone

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/alternatefutures/af-builder/internal/testinfra/gitserver"
	"github.com/alternatefutures/af-builder/runner/failure"
)

const token = "ghs_CloneTestToken0123456789abcdefABCDEF"

// fixture is a repository on a real git server with two commits on main
// and one on a feature branch.
type fixture struct {
	srv                 *gitserver.Server
	repo                *gitserver.Repo
	first, tip, feature string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	srv, err := gitserver.Start(context.Background(), gitserver.Options{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Error(err)
		}
	})
	repo, err := srv.CreateRepo("octo/app")
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{srv: srv, repo: repo}
	f.first, err = repo.Commit("main", map[string]gitserver.File{
		"version.txt":    gitserver.Text("v1\n"),
		"web/index.html": gitserver.Text("<h1>one</h1>\n"),
	}, "first")
	if err != nil {
		t.Fatal(err)
	}
	f.tip, err = repo.Update("main", map[string]gitserver.File{
		"version.txt": gitserver.Text("v2\n"),
		"added.txt":   gitserver.Text("only in the second commit\n"),
	}, "second")
	if err != nil {
		t.Fatal(err)
	}
	f.feature, err = repo.Update("feature/x", map[string]gitserver.File{
		"version.txt": gitserver.Text("feature\n"),
	}, "feature")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func checkout(t *testing.T, cloneURL, ref string) (Result, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "src")
	res, err := Checkout(ctx, cloneURL, ref, dir)
	return res, dir, err
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCheckoutPinnedCommitThatIsNotTheTip(t *testing.T) {
	f := newFixture(t)
	res, dir, err := checkout(t, f.repo.CloneURL(token), f.first)
	if err != nil {
		t.Fatalf("Checkout: %v", err)
	}
	if res.CommitSHA != f.first || res.Dir != dir {
		t.Errorf("Result = %+v, want commit %s in %s", res, f.first, dir)
	}
	if got := readFile(t, filepath.Join(dir, "version.txt")); got != "v1\n" {
		t.Errorf("version.txt = %q, want the pinned commit's %q", got, "v1\n")
	}
	if got := readFile(t, filepath.Join(dir, "web", "index.html")); got != "<h1>one</h1>\n" {
		t.Errorf("web/index.html = %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "added.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("added.txt from the later commit is in the work tree (stat: %v)", err)
	}
}

func TestCheckoutBranchGivesItsTip(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct{ ref, want, version string }{
		{"main", f.tip, "v2\n"},
		{"feature/x", f.feature, "feature\n"},
	} {
		res, dir, err := checkout(t, f.repo.CloneURL(token), tc.ref)
		if err != nil {
			t.Fatalf("Checkout %s: %v", tc.ref, err)
		}
		if res.CommitSHA != tc.want {
			t.Errorf("%s: commit %s, want the tip %s", tc.ref, res.CommitSHA, tc.want)
		}
		if got := readFile(t, filepath.Join(dir, "version.txt")); got != tc.version {
			t.Errorf("%s: version.txt = %q, want %q", tc.ref, got, tc.version)
		}
	}
}

func TestCheckoutIsShallowAndKeepsNoToken(t *testing.T) {
	f := newFixture(t)
	res, dir, err := checkout(t, f.repo.CloneURL(token), "main")
	if err != nil {
		t.Fatalf("Checkout: %v", err)
	}
	shallow := readFile(t, filepath.Join(dir, ".git", "shallow"))
	if strings.TrimSpace(shallow) != res.CommitSHA {
		t.Errorf(".git/shallow = %q, want the checked-out commit alone", shallow)
	}
	repo, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	head, err := repo.CommitObject(plumbing.NewHash(res.CommitSHA))
	if err != nil {
		t.Fatalf("the checked-out commit is not in the store: %v", err)
	}
	if len(head.ParentHashes) != 1 || head.ParentHashes[0].String() != f.first {
		t.Fatalf("parents = %v, want [%s]", head.ParentHashes, f.first)
	}
	if _, err := repo.CommitObject(head.ParentHashes[0]); !errors.Is(err, plumbing.ErrObjectNotFound) {
		t.Errorf("the parent commit was fetched too (err %v): depth is not 1", err)
	}

	cfg := readFile(t, filepath.Join(dir, ".git", "config"))
	if strings.Contains(cfg, token) || strings.Contains(cfg, gitserver.TokenUser) {
		t.Errorf(".git/config holds the credentials:\n%s", cfg)
	}
	if !strings.Contains(cfg, f.repo.SourceURL()) {
		t.Errorf(".git/config has no clean remote URL %s:\n%s", f.repo.SourceURL(), cfg)
	}
}

// wantUserError checks err is a user error of the clone phase containing
// every part, and that the token is nowhere in it.
func wantUserError(t *testing.T, err error, parts ...string) {
	t.Helper()
	var fe *failure.Error
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *failure.Error", err, err)
	}
	if fe.Class != failure.User {
		t.Errorf("phase/class = %s/%s, want clone/user (%v)", fe.Phase, fe.Class, err)
	}
	for _, p := range parts {
		if !strings.Contains(fe.Message, p) {
			t.Errorf("message %q does not mention %q", fe.Message, p)
		}
	}
	if strings.Contains(err.Error(), token) {
		t.Errorf("the error leaks the token: %v", err)
	}
}

func TestCheckoutFailures(t *testing.T) {
	f := newFixture(t)
	missingSHA := strings.Repeat("d", 40)
	for _, tc := range []struct {
		name, url, ref string
		parts          []string
	}{
		{"wrong token", f.repo.CloneURL("ghs_WrongToken0000000000000000000000000"), f.first,
			[]string{"denied", "GitHub App", f.repo.SourceURL()}},
		{"no token", f.repo.SourceURL(), "main", []string{"denied", "GitHub App"}},
		{"unknown commit", f.repo.CloneURL(token), missingSHA,
			[]string{"commit " + missingSHA + " was not found", f.repo.SourceURL()}},
		{"unknown branch", f.repo.CloneURL(token), "gone", []string{"branch gone was not found"}},
		{"unknown repository", strings.Replace(f.repo.CloneURL(token), "/octo/app.git", "/octo/missing.git", 1), "main",
			[]string{"repository", "octo/missing.git", "was not found"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := checkout(t, tc.url, tc.ref)
			if err == nil {
				t.Fatal("Checkout succeeded")
			}
			wantUserError(t, err, tc.parts...)
			if u, _ := url.Parse(tc.url); u.User != nil {
				if pass, _ := u.User.Password(); strings.Contains(err.Error(), pass) {
					t.Errorf("the error leaks the token it was given: %v", err)
				}
			}
		})
	}
}

func TestCheckoutGivesUpWhenTheContextEnds(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Checkout(ctx, f.repo.CloneURL(token), "main", filepath.Join(t.TempDir(), "src"))
	// The pipeline names the reason from its context; the clone only has to
	// stop and say so through the error chain.
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want one that wraps context.Canceled", err)
	}
}

// tree makes a repository-like directory: dirs, files and symlinks.
func tree(t *testing.T, links map[string]string) string {
	t.Helper()
	root := t.TempDir()
	repo := filepath.Join(root, "repo")
	for _, d := range []string{"apps/web/src", ".git/hooks", "docs"} {
		if err := os.MkdirAll(filepath.Join(repo, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "outside"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "README.md"), []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range links {
		target = strings.ReplaceAll(target, "$REPO", repo)
		if err := os.Symlink(target, filepath.Join(repo, name)); err != nil {
			t.Fatal(err)
		}
	}
	return repo
}

func TestResolveRoot(t *testing.T) {
	repo := tree(t, map[string]string{
		"web":      "apps/web",   // inside to inside: fine
		"escape":   "../..",      // out of the repository
		"sibling":  "../outside", // out, one level
		"absolute": "$REPO/apps", // absolute, even though it lands inside
		"gitdir":   ".git",       // into .git through a link
		"dangling": "nowhere/at/all",
		"docs/up":  "../apps/web/src", // a relative link in a subdirectory, staying inside
	})
	base, err := filepath.EvalSymlinks(repo)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		root    string
		want    string // resolved path relative to the repository, when allowed
		refusal string // part of the user message, when refused
	}{
		{root: ".", want: "."},
		{root: "apps/web", want: "apps/web"},
		{root: "apps/web/src", want: "apps/web/src"},
		{root: "web", want: "apps/web"},
		{root: "web/src", want: "apps/web/src"},
		{root: "docs/up", want: "apps/web/src"},
		{root: "apps/missing", refusal: "does not exist"},
		{root: "dangling", refusal: "does not exist"},
		{root: "README.md", refusal: "is not a directory"},
		{root: "escape", refusal: "leads outside the repository"},
		{root: "sibling", refusal: "leads outside the repository"},
		{root: "absolute", refusal: "absolute path"},
		{root: "absolute/web", refusal: "absolute path"},
		{root: ".git", refusal: "leads into .git"},
		{root: ".git/hooks", refusal: "leads into .git"},
		{root: "gitdir", refusal: "leads into .git"},
	} {
		t.Run(tc.root, func(t *testing.T) {
			got, err := ResolveRoot(repo, tc.root)
			if tc.refusal == "" {
				if err != nil {
					t.Fatalf("ResolveRoot(%q): %v", tc.root, err)
				}
				if want := filepath.Join(base, tc.want); got != want {
					t.Errorf("ResolveRoot(%q) = %s, want %s", tc.root, got, want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ResolveRoot(%q) = %s, want a refusal", tc.root, got)
			}
			var fe *failure.Error
			if !errors.As(err, &fe) || fe.Class != failure.User {
				t.Fatalf("err = %v, want a user error of the clone phase", err)
			}
			if !strings.Contains(fe.Message, tc.refusal) || !strings.Contains(fe.Message, tc.root) {
				t.Errorf("message %q does not say %q about %q", fe.Message, tc.refusal, tc.root)
			}
		})
	}
}
