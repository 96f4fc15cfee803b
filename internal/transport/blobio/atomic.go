package blobio

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
)

// WriteFileAtomic writes the content of r to path through a temporary file
// in the same directory: fsync, then rename. On any error nothing is left
// behind. When want is not empty the content is verified first (size -1 when
// unknown) and a mismatch leaves path untouched.
func WriteFileAtomic(path string, r io.Reader, want digest.Digest, size int64) (err error) {
	if want != "" {
		v, verr := NewVerifier(r, want, size)
		if verr != nil {
			return verr
		}
		r = v
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = io.Copy(f, r); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// OpenFile opens a blob file and returns it with its size; callers name
// the transport in the error they wrap around it.
func OpenFile(path string) (io.ReadCloser, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}
