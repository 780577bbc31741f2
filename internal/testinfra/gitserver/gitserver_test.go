package gitserver

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

const tok = "ghs_testtoken123"

func start(t *testing.T) *Server {
	t.Helper()
	s, err := Start(context.Background(), Options{Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		root := s.root
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(root); !os.IsNotExist(err) {
			t.Errorf("%s left behind", root)
		}
	})
	return s
}

func gitCLI(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), gitEnv(t.TempDir())...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestAuth(t *testing.T) {
	s := start(t)
	r, err := s.CreateRepo("octo/app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Commit("main", map[string]File{"a": Text("a\n")}, "one"); err != nil {
		t.Fatal(err)
	}
	refs := r.SourceURL() + "/info/refs?service=git-upload-pack"
	for _, tc := range []struct {
		user, pass string
		want       int
	}{{"", "", 401}, {TokenUser, "wrong", 401}, {"someone", tok, 401}, {TokenUser, tok, 200}} {
		req, _ := http.NewRequest("GET", refs, nil)
		if tc.user != "" {
			req.SetBasicAuth(tc.user, tc.pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s:%s -> %d, want %d", tc.user, tc.pass, resp.StatusCode, tc.want)
		}
		if tc.want == 401 && resp.Header.Get("WWW-Authenticate") != `Basic realm="git"` {
			t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
		}
	}
	if n := s.RequestCount(); n != 4 {
		t.Errorf("RequestCount = %d, want 4", n)
	}

	// A rotated token locks out the old one, as an expired installation
	// token would.
	s.SetToken("ghs_new")
	cmd := exec.Command("git", "ls-remote", r.CloneURL(tok))
	cmd.Env = append(os.Environ(), gitEnv(t.TempDir())...)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("ls-remote with the old token succeeded: %s", out)
	}
	gitCLI(t, "", "ls-remote", r.CloneURL("ghs_new"))

	// A token minted for another build leaves the earlier one valid, as
	// GitHub's installation tokens are until they expire.
	s.AcceptToken("ghs_newer")
	gitCLI(t, "", "ls-remote", r.CloneURL("ghs_new"))
	gitCLI(t, "", "ls-remote", r.CloneURL("ghs_newer"))
	cmd = exec.Command("git", "ls-remote", r.CloneURL(tok))
	cmd.Env = append(os.Environ(), gitEnv(t.TempDir())...)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("ls-remote with a token never accepted succeeded: %s", out)
	}
}

func TestCommitAndClone(t *testing.T) {
	s := start(t)
	r, err := s.CreateRepo("octo/site")
	if err != nil {
		t.Fatal(err)
	}
	first, err := r.Commit("main", map[string]File{
		"Dockerfile":      Text("FROM busybox\n"),
		"bin/run.sh":      Executable("#!/bin/sh\necho hi\n"),
		"docs/readme.txt": Text("old\n"),
		"link":            Symlink("bin/run.sh"),
	}, "first")
	if err != nil {
		t.Fatal(err)
	}
	second, err := r.Update("main", map[string]File{
		"docs/readme.txt": Removed(),
		"new.txt":         Text("new\n"),
	}, "second")
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := r.Head("main"); h != second {
		t.Fatalf("Head = %s, want %s", h, second)
	}

	dir := t.TempDir()
	gitCLI(t, dir, "clone", "--quiet", r.CloneURL(tok), "c")
	c := filepath.Join(dir, "c")
	if got := gitCLI(t, c, "log", "--format=%H %s"); got != second+" second\n"+first+" first" {
		t.Errorf("log:\n%s", got)
	}
	if got := gitCLI(t, c, "ls-tree", "-r", "HEAD"); !strings.Contains(got, "100755 blob") || !strings.Contains(got, "120000 blob") ||
		strings.Contains(got, "docs/readme.txt") || !strings.Contains(got, "new.txt") || !strings.Contains(got, "Dockerfile") {
		t.Errorf("tree:\n%s", got)
	}
	if l, err := os.Readlink(filepath.Join(c, "link")); err != nil || l != "bin/run.sh" {
		t.Errorf("link -> %q, %v", l, err)
	}

	// Commit replaces the whole tree.
	third, err := r.Commit("main", map[string]File{"only.txt": Text("x")}, "third")
	if err != nil {
		t.Fatal(err)
	}
	gitCLI(t, c, "pull", "--quiet", "--ff-only")
	if got := gitCLI(t, c, "ls-files"); got != "only.txt" {
		t.Errorf("after replace: %q", got)
	}

	// A pinned older SHA is fetchable shallowly over protocol v0 (the
	// allowReachableSHA1InWant case) with the git CLI ...
	d2 := filepath.Join(dir, "pinned")
	gitCLI(t, "", "init", "--quiet", d2)
	gitCLI(t, d2, "-c", "protocol.version=0", "fetch", "--quiet", "--depth=1", r.CloneURL(tok), first)
	if got := gitCLI(t, d2, "rev-parse", "FETCH_HEAD"); got != first {
		t.Errorf("fetched %s, want %s", got, first)
	}

	// ... and with go-git, as the runner does.
	before := s.Fetches("octo/site")
	gg, err := git.PlainInit(filepath.Join(dir, "gogit"), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gg.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{r.SourceURL()}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = gg.FetchContext(ctx, &git.FetchOptions{
		RefSpecs: []config.RefSpec{config.RefSpec(second + ":refs/heads/pinned")},
		Depth:    1,
		Auth:     &githttp.BasicAuth{Username: TokenUser, Password: tok},
		Tags:     git.NoTags,
	})
	if err != nil {
		t.Fatalf("go-git fetch %s: %v", second, err)
	}
	ref, err := gg.Reference(plumbing.NewBranchReferenceName("pinned"), true)
	if err != nil || ref.Hash().String() != second {
		t.Errorf("pinned ref %v, %v", ref, err)
	}
	if after := s.Fetches("octo/site"); after != before+1 {
		t.Errorf("Fetches went %d -> %d, want +1", before, after)
	}
	_ = third
}

func TestDeterministicSHAs(t *testing.T) {
	files := map[string]File{"a": Text("1"), "b/c": Executable("2"), "d": Symlink("a")}
	var shas []string
	for i := 0; i < 2; i++ {
		s := start(t)
		r, err := s.CreateRepo("o/r")
		if err != nil {
			t.Fatal(err)
		}
		sha, err := r.Commit("main", files, "same")
		if err != nil {
			t.Fatal(err)
		}
		shas = append(shas, sha)
	}
	if shas[0] != shas[1] {
		t.Errorf("same commit on two servers: %s vs %s", shas[0], shas[1])
	}
}

func TestBranchesAndErrors(t *testing.T) {
	s := start(t)
	if _, err := s.CreateRepo("noslash"); err == nil {
		t.Error("CreateRepo without owner succeeded")
	}
	r, err := s.CreateRepo("o/r")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateRepo("o/r"); err == nil {
		t.Error("duplicate CreateRepo succeeded")
	}
	// The first branch committed to becomes HEAD.
	dev, err := r.Commit("dev", map[string]File{"x": Text("x")}, "on dev")
	if err != nil {
		t.Fatal(err)
	}
	feat, err := r.Commit("feature/y", map[string]File{"y": Text("y")}, "on feature")
	if err != nil {
		t.Fatal(err)
	}
	out := gitCLI(t, "", "ls-remote", "--symref", r.CloneURL(tok))
	if !strings.Contains(out, "ref: refs/heads/dev\tHEAD") || !strings.Contains(out, feat+"\trefs/heads/feature/y") {
		t.Errorf("ls-remote:\n%s", out)
	}
	if p := gitCLI(t, "", "--git-dir="+r.Dir(), "rev-parse", feat+"^"); p != dev {
		t.Errorf("feature/y forked from %s, want %s", p, dev)
	}
	for _, bad := range []string{"../x", "/abs", ".git/config", "a//b"} {
		if _, err := r.Commit("dev", map[string]File{bad: Text("")}, "bad"); err == nil {
			t.Errorf("path %q accepted", bad)
		}
	}
	if _, err := r.Commit("dev", map[string]File{"z": Removed()}, "bad"); err == nil {
		t.Error("Removed in Commit accepted")
	}
	if _, err := r.Commit("bad..branch", nil, "bad"); err == nil {
		t.Error("bad branch name accepted")
	}
	// Pushes are refused.
	req, _ := http.NewRequest("GET", r.SourceURL()+"/info/refs?service=git-receive-pack", nil)
	req.SetBasicAuth(TokenUser, tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("receive-pack: %d", resp.StatusCode)
	}
}

func TestStopOnContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := http.Get(s.URL() + "/")
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("server still answering after its context ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := s.Stop(); err != nil {
		t.Error(err)
	}
}
