package registry

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/zstd"
)

// StoredBlobs calls fn with every blob in the registry's storage, layers
// decompressed (gzip, as images are pushed, or zstd, as the build cache is),
// so a test can look inside everything the registry holds, e.g. for a
// secret. It reads the storage directory, not the API: nothing the
// registry stores can be missed by a listing.
func (r *Registry) StoredBlobs(fn func(path string, content []byte) error) error {
	dec, err := zstd.NewReader(nil)
	if err != nil {
		return err
	}
	defer dec.Close()
	return filepath.WalkDir(filepath.Join(r.storage, "docker/registry/v2/blobs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "data" {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if zr, zerr := gzip.NewReader(bytes.NewReader(b)); zerr == nil {
			if raw, rerr := io.ReadAll(zr); rerr == nil {
				b = raw
			}
		} else if raw, zerr := dec.DecodeAll(b, nil); zerr == nil {
			b = raw
		}
		return fn(p, b)
	})
}
