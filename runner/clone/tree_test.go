package clone

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	git "github.com/go-git/go-git/v5"

	"github.com/alternatefutures/af-builder/internal/testinfra/gitserver"
)

// The checkout writes what git would: modes, symlinks (even dangling or
// pointing out of the repository: ResolveRoot judges those later), nested
// directories, and leaves HEAD on the commit.
func TestCheckoutWritesModesSymlinksAndNestedFiles(t *testing.T) {
	f := newFixture(t)
	sha, err := f.repo.Update("main", map[string]gitserver.File{
		"bin/run.sh":                      gitserver.Executable("#!/bin/sh\necho hi\n"),
		"a/b/c/d/deep.txt":                gitserver.Text("deep\n"),
		"link-to-version":                 gitserver.Symlink("version.txt"),
		"dangling":                        gitserver.Symlink("../../etc/passwd"),
		"a/b/link-up":                     gitserver.Symlink("../../web"),
		"empty.txt":                       gitserver.Text(""),
		"web/" + strings.Repeat("n", 200): gitserver.Text("long name\n"),
	}, "modes")
	if err != nil {
		t.Fatal(err)
	}
	res, dir, err := checkout(t, f.repo.CloneURL(token), sha)
	if err != nil {
		t.Fatal(err)
	}
	if res.CommitSHA != sha {
		t.Errorf("CommitSHA = %s, want %s", res.CommitSHA, sha)
	}
	if fi, err := os.Stat(filepath.Join(dir, "bin/run.sh")); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("bin/run.sh is not executable: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "version.txt")); err != nil || fi.Mode().Perm()&0o111 != 0 {
		t.Errorf("version.txt should not be executable: %v", err)
	}
	for link, want := range map[string]string{"link-to-version": "version.txt", "dangling": "../../etc/passwd", "a/b/link-up": "../../web"} {
		if got, err := os.Readlink(filepath.Join(dir, link)); err != nil || got != want {
			t.Errorf("%s -> %q (%v), want %q", link, got, err, want)
		}
	}
	if got := readFile(t, filepath.Join(dir, "link-to-version")); got != "v2\n" {
		t.Errorf("link-to-version reads %q", got)
	}
	if got := readFile(t, filepath.Join(dir, "a/b/c/d/deep.txt")); got != "deep\n" {
		t.Errorf("deep.txt = %q", got)
	}
	if got := readFile(t, filepath.Join(dir, "empty.txt")); got != "" {
		t.Errorf("empty.txt = %q", got)
	}
	repo, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	head, err := repo.Head()
	if err != nil || head.Hash().String() != sha {
		t.Errorf("HEAD = %v (%v), want %s", head, err, sha)
	}
}

func TestCheckoutablePath(t *testing.T) {
	for p, want := range map[string]bool{
		"a.txt": true, "src/x/y.go": true, ".github/workflows/ci.yml": true, ".gitignore": true, "a/.gitkeep": true,
		".git/config": false, "a/.GIT/hooks/x": false, "../x": false, "a/../../x": false, "a//b": false, "./a": false, "": false, "/abs": false,
	} {
		if got := checkoutablePath(p); got != want {
			t.Errorf("checkoutablePath(%q) = %v, want %v", p, got, want)
		}
	}
}

// Directories are made and entered only by descriptor: a name that is a
// symlink is refused, not followed, and revisiting a directory works.
func TestDirStackNeverFollowsSymlinks(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "evil")); err != nil {
		t.Fatal(err)
	}
	s, err := openDirs(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	for _, d := range []string{"a/b/c", "a/b", "a/d", "x", "a/b/c/e"} {
		if _, err := s.fd(d); err != nil {
			t.Fatalf("fd(%s): %v", d, err)
		}
		if fi, err := os.Lstat(filepath.Join(dir, d)); err != nil || !fi.IsDir() {
			t.Errorf("%s is not a directory: %v", d, err)
		}
	}
	if len(s.fds) != 5 { // ".", a, b, c, e
		t.Errorf("%d descriptors open, want one per level (5)", len(s.fds))
	}
	if _, err := s.fd("evil/sub"); err == nil {
		t.Error("fd went through a symlink")
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("something was created outside: %v", entries)
	}
}
