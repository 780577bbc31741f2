package plan

import (
	"errors"
	"io"
	"os"
	"path"
	"slices"
	"strings"
)

// maxRepoFile caps a file a template reads to decide something
// (package.json, next.config.js, manage.py): real ones are small.
const maxRepoFile = 1 << 20

// repo reads the source directory for the templates. Everything goes through
// an os.Root, so no path or symlink in the repository leads outside it.
type repo struct {
	root *os.Root
}

func openRepo(dir string) (*repo, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &repo{root: root}, nil
}

func (r *repo) close() { r.root.Close() }

// isFile reports a regular file, not a symlink: the engine copies a
// symlink as a link, which would not be the file the template expects.
func (r *repo) isFile(name string) bool {
	fi, err := r.root.Lstat(name)
	return err == nil && fi.Mode().IsRegular()
}

func (r *repo) isDir(name string) bool {
	fi, err := r.root.Lstat(name)
	return err == nil && fi.IsDir()
}

func (r *repo) exists(name string) bool {
	_, err := r.root.Lstat(name)
	return err == nil
}

// read returns a regular file's content, at most maxRepoFile bytes.
func (r *repo) read(name string) ([]byte, bool) {
	if !r.isFile(name) {
		return nil, false
	}
	f, err := r.root.Open(name)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxRepoFile+1))
	if err != nil || len(data) > maxRepoFile {
		return nil, false
	}
	return data, true
}

// firstFile is the first of names that is a regular file.
func (r *repo) firstFile(names ...string) string {
	for _, n := range names {
		if r.isFile(n) {
			return n
		}
	}
	return ""
}

// files lists the regular files of dir whose names match pattern (path.Match).
func (r *repo) files(dir, pattern string) []string {
	f, err := r.root.Open(dir)
	if err != nil {
		return nil
	}
	defer f.Close()
	names, err := f.Readdirnames(2000)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil
	}
	var out []string
	for _, n := range names {
		p := path.Join(dir, n)
		if ok, _ := path.Match(pattern, n); ok && r.isFile(p) {
			out = append(out, strings.TrimPrefix(p, "./"))
		}
	}
	slices.Sort(out)
	return out
}
