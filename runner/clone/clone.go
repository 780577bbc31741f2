// Package clone checks out exactly one commit of a repository with go-git:
// a shallow fetch of the pinned SHA (or the tip of a branch) and nothing else.
package clone

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-billy/v5/osfs"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/alternatefutures/af-builder/runner/failure"
	"github.com/alternatefutures/af-builder/shared/redact"
	"github.com/alternatefutures/af-builder/shared/validate"
)

// Result is what was checked out.
type Result struct {
	Dir       string // repository root
	CommitSHA string // the commit actually checked out
}

// Checkout fetches ref from cloneURL into dir (which must be empty or absent)
// with depth 1 and checks it out. cloneURL carries the token as userinfo; it
// is moved into Basic auth so it is never written to .git/config or printed
// in a go-git error.
func Checkout(ctx context.Context, cloneURL, ref, dir string) (Result, error) {
	remoteURL, auth, err := splitCredentials(cloneURL)
	if err != nil {
		return Result{}, failure.Wrap(failure.User, "REPO_CLONE_URL is not a valid URL", nil)
	}
	// .git is made as git init makes it; objects then go through packStore.
	if _, err := git.PlainInit(dir, false); err != nil {
		return Result{}, failure.Wrap(failure.Infrastructure, "cannot create the work tree", err)
	}
	gitDir := filepath.Join(dir, git.GitDirName)
	store := newPackStore(filesystem.NewStorage(osfs.New(gitDir), cache.NewObjectLRUDefault()), gitDir)
	repo, err := git.Open(store, osfs.New(dir))
	if err != nil {
		return Result{}, failure.Wrap(failure.Infrastructure, "cannot open the work tree", err)
	}
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{remoteURL}}); err != nil {
		return Result{}, failure.Wrap(failure.Infrastructure, "cannot configure the remote", err)
	}

	local := plumbing.NewBranchReferenceName("af-build")
	var spec config.RefSpec
	if validate.IsCommitSHA(ref) {
		// Fetching an exact SHA needs the server to allow reachable SHA1s in
		// want lines; GitHub does.
		spec = config.RefSpec(ref + ":" + local.String())
	} else {
		spec = config.RefSpec("+" + plumbing.NewBranchReferenceName(ref).String() + ":" + local.String())
	}
	err = repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: "origin",
		RefSpecs:   []config.RefSpec{spec},
		Depth:      1,
		Auth:       auth,
		Tags:       git.NoTags,
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return Result{}, classifyFetch(ctx, err, ref, remoteURL)
	}
	head, err := repo.Reference(local, true)
	if err != nil {
		return Result{}, failure.Wrap(failure.Infrastructure, "fetched ref is missing", err)
	}
	commit, err := repo.CommitObject(head.Hash())
	if err != nil {
		return Result{}, failure.Wrap(failure.Infrastructure, "fetched commit is unreadable", err)
	}
	if err := writeTree(ctx, commit, dir); err != nil {
		return Result{}, err
	}
	// HEAD names the commit, detached, as a checkout leaves it.
	if err := repo.Storer.SetReference(plumbing.NewHashReference(plumbing.HEAD, head.Hash())); err != nil {
		return Result{}, failure.Wrap(failure.Infrastructure, "cannot set HEAD", err)
	}
	return Result{Dir: dir, CommitSHA: head.Hash().String()}, nil
}

func splitCredentials(raw string) (string, *githttp.BasicAuth, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", nil, err
	}
	var auth *githttp.BasicAuth
	if u.User != nil {
		pass, _ := u.User.Password()
		auth = &githttp.BasicAuth{Username: u.User.Username(), Password: pass}
		u.User = nil
	}
	return u.String(), auth, nil
}

func classifyFetch(ctx context.Context, err error, ref, remoteURL string) error {
	repo := redact.URL(remoteURL)
	switch {
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed):
		return failure.Wrap(failure.User,
			fmt.Sprintf("access to %s was denied: check that the GitHub App is installed on this repository and has read access to its contents", repo), err)
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return failure.Wrap(failure.User, fmt.Sprintf("repository %s was not found", repo), err)
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		return failure.Wrap(failure.User, fmt.Sprintf("repository %s is empty", repo), err)
	case isMissingRef(err):
		what := "branch " + ref
		if validate.IsCommitSHA(ref) {
			what = "commit " + ref
		}
		return failure.Wrap(failure.User,
			fmt.Sprintf("%s was not found in %s (was it force-pushed away or deleted?)", what, repo), err)
	default:
		return failure.Wrap(failure.Transient, fmt.Sprintf("fetching %s failed", repo), err)
	}
}

// isMissingRef recognises the answers a server gives for a ref or SHA it does
// not have; go-git surfaces them as text, not typed errors.
func isMissingRef(err error) bool {
	var nm git.NoMatchingRefSpecError
	if errors.As(err, &nm) {
		return true
	}
	msg := strings.ToLower(err.Error())
	for _, s := range []string{"not our ref", "couldn't find remote ref", "reference not found", "object not found", "unadvertised object"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// ResolveRoot joins root to the repository and makes sure the result, with
// symlinks resolved, is a directory inside it: a repository can contain a
// link that points out of it, which validation of the name alone cannot see.
func ResolveRoot(repoDir, root string) (string, error) {
	base, err := filepath.EvalSymlinks(repoDir)
	if err != nil {
		return "", failure.Wrap(failure.Infrastructure, "cannot resolve the work tree", err)
	}
	// An absolute link names a path on whatever machine resolves it, never
	// one inside the repository.
	cur := base
	for _, comp := range strings.Split(filepath.FromSlash(root), string(filepath.Separator)) {
		if comp == "." || comp == "" {
			continue
		}
		cur = filepath.Join(cur, comp)
		if t, err := os.Readlink(cur); err == nil && filepath.IsAbs(t) {
			return "", failure.Userf("ROOT_DIRECTORY %q leads outside the repository (through a symlink to an absolute path)", root)
		}
	}
	target := filepath.Join(base, filepath.FromSlash(root))
	resolved, err := filepath.EvalSymlinks(target)
	if errors.Is(err, os.ErrNotExist) {
		return "", failure.Userf("ROOT_DIRECTORY %q does not exist in the repository at this commit", root)
	}
	if err != nil {
		return "", failure.Userf("ROOT_DIRECTORY %q cannot be resolved: %v", root, errors.Unwrap(err))
	}
	rel, err := filepath.Rel(base, resolved)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", failure.Userf("ROOT_DIRECTORY %q leads outside the repository (through a symlink)", root)
	}
	if rel == ".git" || strings.HasPrefix(rel, ".git"+string(filepath.Separator)) {
		return "", failure.Userf("ROOT_DIRECTORY %q leads into .git", root)
	}
	fi, err := os.Stat(resolved)
	if err != nil || !fi.IsDir() {
		return "", failure.Userf("ROOT_DIRECTORY %q is not a directory", root)
	}
	return resolved, nil
}
