package clone

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/memory"
)

// packStore is the repository's storage during a checkout: references,
// config and the shallow list live in .git as usual, but objects are kept
// in memory, inflated, as the fetched pack is read.
//
// go-git's own filesystem storage inflates every object of the pack twice
// to index it (once to hash it as it arrives, once more to resolve deltas
// from the file) and a third time when the checkout reads it back. Read
// from the stream into memory, each object is inflated once and the
// checkout copies it from there. The pack itself is still written to .git
// as it came, with the index built in the same pass, so .git is a valid
// shallow repository for anyone who runs git in the build.
//
// The cost is memory: the commit's objects, about the size of its tree,
// which the build context holds anyway.
type packStore struct {
	*filesystem.Storage
	objects *memory.Storage
	// packDir is .git/objects/pack.
	packDir string
}

func newPackStore(fs *filesystem.Storage, gitDir string) *packStore {
	return &packStore{Storage: fs, objects: memory.NewStorage(), packDir: filepath.Join(gitDir, "objects", "pack")}
}

// The object methods go to memory; everything else stays with the
// filesystem storage.

func (s *packStore) NewEncodedObject() plumbing.EncodedObject { return s.objects.NewEncodedObject() }

func (s *packStore) SetEncodedObject(o plumbing.EncodedObject) (plumbing.Hash, error) {
	return s.objects.SetEncodedObject(o)
}

func (s *packStore) EncodedObject(t plumbing.ObjectType, h plumbing.Hash) (plumbing.EncodedObject, error) {
	return s.objects.EncodedObject(t, h)
}

func (s *packStore) IterEncodedObjects(t plumbing.ObjectType) (storer.EncodedObjectIter, error) {
	return s.objects.IterEncodedObjects(t)
}

func (s *packStore) HasEncodedObject(h plumbing.Hash) error { return s.objects.HasEncodedObject(h) }

func (s *packStore) EncodedObjectSize(h plumbing.Hash) (int64, error) {
	return s.objects.EncodedObjectSize(h)
}

func (s *packStore) AddAlternate(remote string) error { return s.objects.AddAlternate(remote) }

// PackfileWriter takes the pack as the fetch receives it: each write goes
// to a temporary file in .git/objects/pack and to a parser that fills the
// memory storage and the index as the bytes arrive.
func (s *packStore) PackfileWriter() (io.WriteCloser, error) {
	if err := os.MkdirAll(s.packDir, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(s.packDir, "tmp_pack_")
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	w := &packWriter{tmp: tmp, pipe: pw, dir: s.packDir, idx: new(idxfile.Writer), done: make(chan error, 1)}
	go func() {
		p, err := packfile.NewParserWithStorage(packfile.NewScanner(pr), s.objects, w.idx)
		if err == nil {
			w.sum, err = p.Parse()
		}
		if err != nil {
			// The fetch's next write fails with it, instead of blocking.
			pr.CloseWithError(err)
		} else {
			_, _ = io.Copy(io.Discard, pr)
		}
		w.done <- err
	}()
	return w, nil
}

type packWriter struct {
	tmp  *os.File
	pipe *io.PipeWriter
	dir  string
	idx  *idxfile.Writer
	sum  plumbing.Hash
	done chan error
}

func (w *packWriter) Write(p []byte) (int, error) {
	if _, err := w.tmp.Write(p); err != nil {
		return 0, err
	}
	return w.pipe.Write(p)
}

// Close waits for the parser and, when the pack was whole, keeps it and
// its index under their checksum name, as git names them.
func (w *packWriter) Close() error {
	_ = w.pipe.Close()
	perr := <-w.done
	cerr := w.tmp.Close()
	if perr != nil || cerr != nil || !w.idx.Finished() {
		_ = os.Remove(w.tmp.Name())
		if errors.Is(perr, packfile.ErrEmptyPackfile) {
			return nil
		}
		if perr == nil && cerr == nil {
			perr = errors.New("the pack ended early")
		}
		return errors.Join(perr, cerr)
	}
	base := filepath.Join(w.dir, fmt.Sprintf("pack-%s", w.sum))
	idx, err := w.idx.Index()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(base+".idx", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return err
	}
	if _, err := idxfile.NewEncoder(f).Encode(idx); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(w.tmp.Name(), 0o444); err != nil {
		return err
	}
	return os.Rename(w.tmp.Name(), base+".pack")
}
