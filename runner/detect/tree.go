package detect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"unicode/utf8"
)

// Limits that keep detection fast and bounded whatever the repo holds.
const (
	// maxManifestBytes caps one manifest: real ones are a few KiB, so anything
	// larger is junk we refuse rather than parse.
	maxManifestBytes = 1 << 20
	// maxSourceBytes caps a source file read only to look for its port.
	maxSourceBytes = 256 << 10
	// maxTotalBytes caps everything one Detect reads, so a monorepo with
	// hundreds of workspace packages cannot make it slow.
	maxTotalBytes = 24 << 20
	// maxDirEntries caps one directory listing; a root with more entries than
	// this is not a source tree anyone deploys.
	maxDirEntries = 20000
)

var (
	errNotFound   = errors.New("not found")
	errTooLarge   = errors.New("too large")
	errNotRegular = errors.New("not a regular file")
	errOutside    = errors.New("symlink points outside the source tree")
	errBroken     = errors.New("broken symlink")
	errBudget     = errors.New("read budget for this directory exhausted")
	errBinary     = errors.New("binary content, not a text manifest")
)

// skipDirs are never listed or walked: dependency caches, build output and VCS
// data are huge and say nothing about the app that the manifests don't.
var skipDirs = map[string]bool{
	"node_modules": true, ".git": true, ".hg": true, ".svn": true, "vendor": true,
	"target": true, "dist": true, "build": true, "out": true, ".next": true,
	".nuxt": true, ".output": true, ".svelte-kit": true, ".turbo": true,
	"venv": true, ".venv": true, "__pycache__": true, ".mypy_cache": true,
	".pytest_cache": true, ".tox": true, ".gradle": true, ".idea": true,
	".vscode": true, "coverage": true, "_build": true, "deps": true,
	".cache": true, ".yarn": true, ".pnpm-store": true, "bower_components": true,
	"Pods": true, ".dart_tool": true, ".stack-work": true, "zig-cache": true,
	".zig-cache": true, "zig-out": true, "bin": true, "obj": true,
}

type dirEntry struct {
	name  string
	isDir bool
}

type readResult struct {
	data []byte
	err  error
}

// tree is the only way detection touches the file system: every access goes
// through an os.Root, so no path or symlink in the repo can lead outside it,
// and every read is capped.
type tree struct {
	ctx   context.Context
	root  *os.Root
	used  int64
	files map[string]readResult
	dirs  map[string][]dirEntry
	// notes are problems with files worth telling the user about, in the order found.
	notes   []string
	noted   map[string]bool
	overrun bool
}

func newTree(ctx context.Context, root *os.Root) *tree {
	return &tree{
		ctx:   ctx,
		root:  root,
		files: map[string]readResult{},
		dirs:  map[string][]dirEntry{},
		noted: map[string]bool{},
	}
}

func (t *tree) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	if !t.noted[s] {
		t.noted[s] = true
		t.notes = append(t.notes, s)
	}
}

// stat follows symlinks that stay inside the tree and classifies the rest.
func (t *tree) stat(name string) (fs.FileInfo, error) {
	if t.ctx.Err() != nil {
		return nil, t.ctx.Err()
	}
	fi, err := t.root.Stat(name)
	if err == nil {
		return fi, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		if lfi, lerr := t.root.Lstat(name); lerr == nil && lfi.Mode()&fs.ModeSymlink != 0 {
			return nil, errBroken
		}
		return nil, errNotFound
	}
	if lfi, lerr := t.root.Lstat(name); lerr == nil && lfi.Mode()&fs.ModeSymlink != 0 {
		return nil, errOutside
	}
	// ENOTDIR and friends: the path does not name anything we can use.
	return nil, errNotFound
}

// hasEntry reports whether name exists as a regular file or a symlink
// (wherever it points), without reading it.
func (t *tree) hasEntry(name string) bool {
	fi, err := t.root.Lstat(name)
	return err == nil && (fi.Mode().IsRegular() || fi.Mode()&fs.ModeSymlink != 0)
}

func (t *tree) isSymlink(name string) bool {
	fi, err := t.root.Lstat(name)
	return err == nil && fi.Mode()&fs.ModeSymlink != 0
}

// isFile reports whether name is a regular file inside the tree.
func (t *tree) isFile(name string) bool {
	fi, err := t.stat(name)
	return err == nil && fi.Mode().IsRegular()
}

func (t *tree) isDir(name string) bool {
	fi, err := t.stat(name)
	return err == nil && fi.IsDir()
}

// read returns at most limit bytes of name. Files over the limit are refused
// whole: half a manifest parses into something misleading.
func (t *tree) read(name string, limit int64) ([]byte, error) {
	if r, ok := t.files[name]; ok {
		return r.data, r.err
	}
	data, err := t.readUncached(name, limit)
	if t.ctx.Err() == nil {
		t.files[name] = readResult{data, err}
	}
	return data, err
}

func (t *tree) readUncached(name string, limit int64) ([]byte, error) {
	fi, err := t.stat(name)
	if err != nil {
		return nil, err
	}
	// Checked before opening: opening a FIFO or device would block or never end.
	if !fi.Mode().IsRegular() {
		return nil, errNotRegular
	}
	if fi.Size() > limit {
		return nil, errTooLarge
	}
	if t.used+min(fi.Size(), limit) > maxTotalBytes {
		if !t.overrun {
			t.overrun = true
			t.note("stopped reading files: more than %d MiB read in this directory", maxTotalBytes>>20)
		}
		return nil, errBudget
	}
	f, err := t.root.Open(name)
	if err != nil {
		return nil, errNotFound
	}
	defer f.Close()
	// The size can change after the stat; the limited reader keeps the cap true.
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	t.used += int64(len(data))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, errTooLarge
	}
	return data, nil
}

// manifest reads a manifest that decides the result; a problem other than
// absence becomes a note so the user learns why the file was ignored.
func (t *tree) manifest(name string) ([]byte, bool) {
	data, err := t.manifestErr(name)
	return data, err == nil
}

func (t *tree) manifestErr(name string) ([]byte, error) {
	data, err := t.read(name, maxManifestBytes)
	// Manifests are text; NULs or invalid UTF-8 mean junk that regex-based
	// readers (Gemfile, mix.exs, go.mod) would otherwise take at face value.
	if err == nil && (bytes.IndexByte(data, 0) >= 0 || !utf8.Valid(data)) {
		err = errBinary
	}
	switch {
	case err == nil:
		return data, nil
	case errors.Is(err, errNotFound), errors.Is(err, errBudget), t.ctx.Err() != nil:
	case errors.Is(err, errTooLarge):
		t.note("%s: larger than %d MiB, ignored", name, maxManifestBytes>>20)
	default:
		t.note("%s: %v, ignored", name, err)
	}
	return nil, err
}

// source reads a file only scanned for hints; problems are not worth a note.
func (t *tree) source(name string) ([]byte, bool) {
	data, err := t.read(name, maxSourceBytes)
	return data, err == nil
}

// list returns the sorted entries of dir; symlinks count as directories only
// when they resolve to one inside the tree.
func (t *tree) list(dir string) []dirEntry {
	if d, ok := t.dirs[dir]; ok {
		return d
	}
	var out []dirEntry
	defer func() { t.dirs[dir] = out }()
	if t.ctx.Err() != nil {
		return nil
	}
	f, err := t.root.Open(dir)
	if err != nil {
		return nil
	}
	defer f.Close()
	for len(out) < maxDirEntries {
		batch, err := f.ReadDir(512)
		for _, e := range batch {
			de := dirEntry{name: e.Name(), isDir: e.IsDir()}
			if e.Type()&fs.ModeSymlink != 0 {
				de.isDir = t.isDir(path.Join(dir, e.Name()))
			}
			out = append(out, de)
		}
		if err != nil {
			break
		}
	}
	if len(out) >= maxDirEntries {
		t.note("%s: more than %d entries, only the first were looked at", dirLabel(dir), maxDirEntries)
	}
	slices.SortFunc(out, func(a, b dirEntry) int { return strings.Compare(a.name, b.name) })
	return out
}

// rootFilesWithSuffix lists regular files at the root ending in one of suffixes.
func (t *tree) rootFilesWithSuffix(suffixes ...string) []string {
	var out []string
	for _, e := range t.list(".") {
		if e.isDir {
			continue
		}
		for _, s := range suffixes {
			if strings.HasSuffix(e.name, s) && len(e.name) > len(s) {
				out = append(out, e.name)
				break
			}
		}
	}
	return out
}

func dirLabel(dir string) string {
	if dir == "." {
		return "the root directory"
	}
	return dir
}

// firstFile returns the first of names that is a regular file.
func (t *tree) firstFile(names ...string) string {
	for _, n := range names {
		if t.isFile(n) {
			return n
		}
	}
	return ""
}
