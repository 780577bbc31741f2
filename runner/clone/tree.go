package clone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"golang.org/x/sys/unix"

	"github.com/alternatefutures/af-builder/runner/failure"
)

// writeTree writes the files of commit into dir, which holds only .git.
//
// go-git's Worktree.Checkout does this and more, and the more costs a
// third of its CPU time on a large repository: it diffs the commit against
// an empty index and an empty work tree, looks every changed path up again
// from the root tree, and hashes each written file back into a new index.
// A build needs the files and nothing else (nobody runs git in the work
// tree afterwards), so this walks the tree once and streams each blob
// straight into its file.
//
// Files are created relative to directory descriptors this function made
// itself (mkdirat, then openat with O_NOFOLLOW), and with O_EXCL: nothing
// can be written outside dir, not through "..", nor through a symlink the
// tree itself planted. That costs three system calls a file, where
// resolving each path from the top (os.Root) costs three more per level.
// Paths git itself refuses to check out (".git" components, empty, "." or
// ".." ones) are refused here too.
func writeTree(ctx context.Context, commit *object.Commit, dir string) error {
	tree, err := commit.Tree()
	if err != nil {
		return failure.Wrap(failure.Infrastructure, "fetched tree is unreadable", err)
	}
	dirs, err := openDirs(dir)
	if err != nil {
		return failure.Wrap(failure.Infrastructure, "cannot open the work tree", err)
	}
	defer dirs.close()

	files := tree.Files()
	defer files.Close()
	for {
		if err := ctx.Err(); err != nil {
			return failure.Wrap(failure.Transient, "checkout stopped before it finished", err)
		}
		f, err := files.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return failure.Wrap(failure.Infrastructure, "fetched tree is unreadable", err)
		}
		if !checkoutablePath(f.Name) {
			return failure.Userf("the commit contains a path git refuses to check out: %q", f.Name)
		}
		parent, err := dirs.fd(path.Dir(f.Name))
		if err != nil {
			return failure.Wrap(failure.Infrastructure, fmt.Sprintf("cannot create the directory of %s", f.Name), err)
		}
		if err := writeFile(parent, path.Base(f.Name), f); err != nil {
			return failure.Wrap(failure.Infrastructure, fmt.Sprintf("cannot write %s", f.Name), err)
		}
	}
}

// dirStack holds descriptors for the directory being written and its
// ancestors. The tree is walked depth first, so a directory left behind is
// not come back to (if it were, it would just be opened again), and at
// most one descriptor per level is open however many directories the
// repository has.
type dirStack struct {
	paths []string
	fds   []int
}

func openDirs(dir string) (*dirStack, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return &dirStack{paths: []string{"."}, fds: []int{fd}}, nil
}

func (s *dirStack) fd(d string) (int, error) {
	top := len(s.paths) - 1
	for top > 0 && d != s.paths[top] && !strings.HasPrefix(d, s.paths[top]+"/") {
		_ = unix.Close(s.fds[top])
		s.paths, s.fds = s.paths[:top], s.fds[:top]
		top--
	}
	if d == s.paths[top] {
		return s.fds[top], nil
	}
	// Create and open each missing level below the deepest open ancestor.
	rest := d
	if s.paths[top] != "." {
		rest = strings.TrimPrefix(d, s.paths[top]+"/")
	}
	for _, name := range strings.Split(rest, "/") {
		parent := s.fds[len(s.fds)-1]
		if err := unix.Mkdirat(parent, name, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			return -1, &os.PathError{Op: "mkdir", Path: name, Err: err}
		}
		// O_NOFOLLOW|O_DIRECTORY: an existing name that is a symlink is
		// refused, never followed.
		fd, err := unix.Openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: name, Err: err}
		}
		p := name
		if last := s.paths[len(s.paths)-1]; last != "." {
			p = last + "/" + name
		}
		s.paths, s.fds = append(s.paths, p), append(s.fds, fd)
	}
	return s.fds[len(s.fds)-1], nil
}

func (s *dirStack) close() {
	for _, fd := range s.fds {
		_ = unix.Close(fd)
	}
	s.paths, s.fds = nil, nil
}

func writeFile(parent int, name string, f *object.File) (err error) {
	r, err := f.Reader()
	if err != nil {
		return err
	}
	defer closeInto(r, &err)
	switch f.Mode {
	case filemode.Symlink:
		target, err := io.ReadAll(io.LimitReader(r, 4096))
		if err != nil {
			return err
		}
		return unix.Symlinkat(string(target), parent, name)
	case filemode.Executable, filemode.Regular, filemode.Deprecated:
		perm := uint32(0o644)
		if f.Mode == filemode.Executable {
			perm = 0o755
		}
		// O_EXCL: the directory was empty, so an existing name means the
		// tree named it twice; never write through it.
		fd, err := unix.Openat(parent, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
		if err != nil {
			return &os.PathError{Op: "create", Path: name, Err: err}
		}
		w := os.NewFile(uintptr(fd), name)
		defer closeInto(w, &err)
		_, err = io.Copy(w, r)
		return err
	default:
		return fmt.Errorf("unsupported file mode %s", f.Mode)
	}
}

// checkoutablePath is git's verify_path for Linux: no empty, "." or ".."
// component and no ".git" in any case.
func checkoutablePath(p string) bool {
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." || c == ".." || strings.EqualFold(c, ".git") {
			return false
		}
	}
	return true
}

func closeInto(c io.Closer, err *error) {
	if cerr := c.Close(); cerr != nil && *err == nil {
		*err = cerr
	}
}
