package gitserver

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// File is one entry of a commit's tree.
type File struct {
	// Content of a regular file.
	Content string
	// Mode is 0644 (the default, also for 0) or 0755; git records nothing
	// else for regular files.
	Mode os.FileMode
	// Symlink, when set, makes the entry a symbolic link to this target
	// (which may dangle or point outside the repository, as in real repos);
	// Content and Mode are then ignored.
	Symlink string
	// Remove deletes the path; only meaningful in Update.
	Remove bool
}

// Text is a regular 0644 file.
func Text(content string) File { return File{Content: content, Mode: 0o644} }

// Executable is a regular 0755 file.
func Executable(content string) File { return File{Content: content, Mode: 0o755} }

// Symlink is a symbolic link to target.
func Symlink(target string) File { return File{Symlink: target} }

// Removed deletes a path in Update.
func Removed() File { return File{Remove: true} }

// Repo is a bare repository on the server.
type Repo struct {
	srv   *Server
	owner string
	name  string
	dir   string
	mu    sync.Mutex // one commit at a time
}

// CreateRepo creates the empty bare repository "owner/name" (served as
// /owner/name.git) with HEAD on main.
func (s *Server) CreateRepo(fullName string) (*Repo, error) {
	owner, name, ok := strings.Cut(strings.TrimSuffix(fullName, ".git"), "/")
	if !ok || !validName(owner) || !validName(name) {
		return nil, fmt.Errorf("create repo %q: want owner/name of [A-Za-z0-9._-]", fullName)
	}
	key := owner + "/" + name
	r := &Repo{srv: s, owner: owner, name: name, dir: filepath.Join(s.repos, owner, name+".git")}
	// Reserve the name, then run git without the lock, which requests
	// being served need too.
	s.mu.Lock()
	if _, dup := s.repoSet[key]; dup {
		s.mu.Unlock()
		return nil, fmt.Errorf("create repo %s: exists", key)
	}
	s.repoSet[key] = r
	s.mu.Unlock()
	if err := r.init(); err != nil {
		s.mu.Lock()
		delete(s.repoSet, key)
		s.mu.Unlock()
		os.RemoveAll(r.dir)
		return nil, fmt.Errorf("create repo %s: %w", key, err)
	}
	return r, nil
}

func (r *Repo) init() error {
	if err := os.MkdirAll(filepath.Dir(r.dir), 0o755); err != nil {
		return err
	}
	if _, err := r.srv.git("", "init", "--quiet", "--bare", "--initial-branch=main", r.dir); err != nil {
		return err
	}
	for _, kv := range [][2]string{
		// A pinned SHA can be fetched shallowly, as from GitHub.
		{"uploadpack.allowReachableSHA1InWant", "true"},
		// Partial clone filters, also served by GitHub.
		{"uploadpack.allowFilter", "true"},
		{"http.receivepack", "false"},
	} {
		if _, err := r.srv.git(r.dir, "config", kv[0], kv[1]); err != nil {
			return err
		}
	}
	return nil
}

func validName(s string) bool {
	if s == "" || s == "." || s == ".." || strings.HasSuffix(s, ".git") {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// FullName is "owner/name".
func (r *Repo) FullName() string { return r.owner + "/" + r.name }

// Owner is the owner part of the name.
func (r *Repo) Owner() string { return r.owner }

// Name is the repository part of the name.
func (r *Repo) Name() string { return r.name }

// Dir is the bare repository on disk.
func (r *Repo) Dir() string { return r.dir }

// CloneURL is the URL with credentials, as REPO_CLONE_URL carries them:
// http://x-access-token:TOKEN@127.0.0.1:PORT/owner/name.git.
func (r *Repo) CloneURL(token string) string {
	return "http://" + TokenUser + ":" + token + "@" + r.srv.addr + "/" + r.FullName() + ".git"
}

// SourceURL is the URL without credentials (REPO_SOURCE_URL).
func (r *Repo) SourceURL() string {
	return "http://" + r.srv.addr + "/" + r.FullName() + ".git"
}

// Commit makes a commit on branch whose tree is exactly files (paths with
// "/" create directories), with message, and returns its SHA. The branch is
// created if needed, from the tip of HEAD's branch; the first branch
// committed to in an empty repository becomes HEAD, as on GitHub. Author,
// committer and dates are fixed (the date advances one second per commit
// in the repository), so the same sequence of commits gives the same SHAs.
func (r *Repo) Commit(branch string, files map[string]File, message string) (string, error) {
	return r.commit(branch, files, message, false)
}

// Update is Commit starting from the branch's current tree: files are
// added or replaced, and entries made with Removed are deleted.
func (r *Repo) Update(branch string, files map[string]File, message string) (string, error) {
	return r.commit(branch, files, message, true)
}

// Head returns the SHA at the tip of branch.
func (r *Repo) Head(branch string) (string, error) {
	out, err := r.srv.git(r.dir, "rev-parse", "--verify", "--quiet", "refs/heads/"+branch+"^{commit}")
	if err != nil {
		return "", fmt.Errorf("head of %s %s: %w", r.FullName(), branch, err)
	}
	return out, nil
}

// Tag points the lightweight tag name at sha.
func (r *Repo) Tag(name, sha string) error {
	if _, err := r.srv.git(r.dir, "update-ref", "refs/tags/"+name, sha); err != nil {
		return fmt.Errorf("tag %s %s: %w", r.FullName(), name, err)
	}
	return nil
}

func (r *Repo) commit(branch string, files map[string]File, message string, update bool) (sha string, err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("commit to %s %s: %w", r.FullName(), branch, err)
		}
	}()
	if _, err := r.srv.git("", "check-ref-format", "--branch", branch); err != nil {
		return "", fmt.Errorf("bad branch name: %w", err)
	}
	if message == "" {
		message = "commit"
	}
	r.mu.Lock()
	defer r.mu.Unlock()

	parent, _ := r.srv.git(r.dir, "rev-parse", "--verify", "--quiet", "refs/heads/"+branch+"^{commit}")
	old := parent
	if parent == "" {
		old = strings.Repeat("0", 40) // update-ref: the branch must not exist yet
		parent, _ = r.srv.git(r.dir, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
	}

	// A scratch work tree and index per commit; the objects go straight
	// into the bare repository, which is what a push would leave there.
	work, err := os.MkdirTemp(r.srv.root, "work-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	tree := filepath.Join(work, "tree")
	if err := os.Mkdir(tree, 0o755); err != nil {
		return "", err
	}
	env := []string{"GIT_DIR=" + r.dir, "GIT_WORK_TREE=" + tree, "GIT_INDEX_FILE=" + filepath.Join(work, "index")}
	if update && parent != "" {
		if _, err := r.srv.gitEnv(env, "", "read-tree", parent); err != nil {
			return "", err
		}
		if _, err := r.srv.gitEnv(env, "", "checkout-index", "--all"); err != nil {
			return "", err
		}
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := writeEntry(tree, name, files[name], update); err != nil {
			return "", err
		}
	}
	if _, err := r.srv.gitEnv(env, tree, "add", "--all", "--force", "."); err != nil {
		return "", err
	}
	treeID, err := r.srv.gitEnv(env, "", "write-tree")
	if err != nil {
		return "", err
	}

	n := 0
	if c, err := r.srv.git(r.dir, "rev-list", "--all", "--count"); err == nil {
		n, _ = strconv.Atoi(c)
	}
	date := strconv.FormatInt(baseDate.Unix()+int64(n), 10) + " +0000"
	cenv := append(env,
		"GIT_AUTHOR_NAME=AF Test", "GIT_AUTHOR_EMAIL=test@af-builder.invalid", "GIT_AUTHOR_DATE="+date,
		"GIT_COMMITTER_NAME=AF Test", "GIT_COMMITTER_EMAIL=test@af-builder.invalid", "GIT_COMMITTER_DATE="+date,
	)
	args := []string{"commit-tree", treeID, "-m", message}
	if parent != "" {
		args = append(args, "-p", parent)
	}
	sha, err = r.srv.gitEnv(cenv, "", args...)
	if err != nil {
		return "", err
	}
	if _, err := r.srv.git(r.dir, "update-ref", "-m", "testinfra commit", "refs/heads/"+branch, sha, old); err != nil {
		return "", err
	}
	// An empty repository's HEAD follows its first branch.
	if _, err := r.srv.git(r.dir, "rev-parse", "--verify", "--quiet", "HEAD^{commit}"); err != nil {
		if _, err := r.srv.git(r.dir, "symbolic-ref", "HEAD", "refs/heads/"+branch); err != nil {
			return "", err
		}
	}
	return sha, nil
}

var baseDate = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func writeEntry(tree, name string, f File, update bool) error {
	clean := path.Clean(name)
	if name == "" || path.IsAbs(name) || clean != name || clean == "." || strings.HasPrefix(clean, "../") || clean == ".." {
		return fmt.Errorf("path %q: want a clean relative path", name)
	}
	for _, part := range strings.Split(clean, "/") {
		if strings.EqualFold(part, ".git") {
			return fmt.Errorf("path %q: .git is not allowed", name)
		}
	}
	p := filepath.Join(tree, filepath.FromSlash(clean))
	if f.Remove {
		if !update {
			return fmt.Errorf("path %q: Removed only makes sense in Update", name)
		}
		if _, err := os.Lstat(p); err != nil {
			return fmt.Errorf("path %q: remove: not in the tree", name)
		}
		return os.RemoveAll(p)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	// Replace whatever is there: a file can become a link or vice versa.
	if err := os.RemoveAll(p); err != nil {
		return err
	}
	if f.Symlink != "" {
		return os.Symlink(f.Symlink, p)
	}
	mode := os.FileMode(0o644)
	if f.Mode&0o111 != 0 {
		mode = 0o755
	}
	if err := os.WriteFile(p, []byte(f.Content), mode); err != nil {
		return err
	}
	return os.Chmod(p, mode) // WriteFile's mode is filtered by the umask
}

// git runs git in dir (the bare repo as GIT_DIR when dir is set) and
// returns its trimmed stdout.
func (s *Server) git(gitDir string, args ...string) (string, error) {
	var env []string
	if gitDir != "" {
		env = []string{"GIT_DIR=" + gitDir}
	}
	return s.gitEnv(env, "", args...)
}

func (s *Server) gitEnv(extra []string, dir string, args ...string) (string, error) {
	cmd := exec.Command(s.gitBin, args...)
	cmd.Dir = dir
	if cmd.Dir == "" {
		cmd.Dir = s.root
	}
	// Inherited GIT_* variables (a hook, a developer's GIT_DIR) would point
	// git somewhere else.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, gitEnv(filepath.Join(s.root, "home"))...)
	cmd.Env = append(cmd.Env, extra...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return strings.TrimSpace(stdout.String()), fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}
