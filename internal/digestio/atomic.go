package digestio

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// File is a file written atomically: it is made under a temporary name
// and takes its real name only in Commit, once its content is on disk, so
// that a reader, or the next process after a crash, finds at the real name
// either what was there before or all of the new content. Defer Abort
// right after CreateTemp: it removes the temporary file unless Commit
// succeeded. A File is not safe for concurrent use.
type File struct {
	f    *os.File
	done bool
	// written and queued count bytes written and bytes whose writeback
	// was started (Write).
	written, queued int64
}

// writebackChunk is how much a File lets pile up in the page cache
// before it starts writing it back: Commit's fsync then waits for the
// last chunk, not for the whole file, which the disk wrote meanwhile.
const writebackChunk = 8 << 20

// CreateTemp starts a File in dir, named by pattern as os.CreateTemp
// names files (mode 0600). dir must be on the filesystem of the final
// path: its directory, or a temporary directory beside it.
func CreateTemp(dir, pattern string) (*File, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return &File{f: f}, nil
}

// Name returns the temporary file's path.
func (f *File) Name() string { return f.f.Name() }

// Write implements io.Writer.
func (f *File) Write(p []byte) (int, error) {
	n, err := f.f.Write(p)
	f.written += int64(n)
	if f.written-f.queued >= writebackChunk {
		// Only a hint: Commit's fsync is what makes the file durable.
		_ = unix.SyncFileRange(int(f.f.Fd()), f.queued, f.written-f.queued, unix.SYNC_FILE_RANGE_WRITE)
		f.queued = f.written
	}
	return n, err
}

// ReadFrom implements io.ReaderFrom, so that io.Copy from a file can use
// the kernel's copy; from other readers it writes through Write.
func (f *File) ReadFrom(r io.Reader) (int64, error) {
	if _, ok := r.(*os.File); ok {
		n, err := f.f.ReadFrom(r)
		f.written += n
		return n, err
	}
	buf := make([]byte, 256<<10)
	return io.CopyBuffer(writerOnly{f}, r, buf)
}

// writerOnly hides File's ReadFrom from io.CopyBuffer.
type writerOnly struct{ io.Writer }

// Chmod sets the mode the file will have.
func (f *File) Chmod(mode os.FileMode) error { return f.f.Chmod(mode) }

// Commit fsyncs and closes the file, renames it to path and fsyncs path's
// directory, so that the new name survives a crash too. On an error before
// the rename the temporary file is removed and path is untouched.
func (f *File) Commit(path string) error {
	if f.done {
		return errors.New("committing a file twice")
	}
	f.done = true
	err := f.f.Sync()
	if cerr := f.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.f.Name(), path)
	}
	if err != nil {
		os.Remove(f.f.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return SyncDir(filepath.Dir(path))
}

// Abort closes and removes the temporary file; after Commit it does
// nothing. It may be called more than once.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.f.Close()
	os.Remove(f.f.Name())
}

// SyncDir fsyncs directory dir, making the names in it (a rename into it,
// a file made or removed there) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// WriteAtomic makes path, with mode perm, from what fill writes, through
// a File in path's directory: temporary file, fsync, rename, fsync of the
// directory. On any error nothing is left behind and path is untouched.
func WriteAtomic(path string, perm os.FileMode, fill func(io.Writer) error) error {
	f, err := CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := fill(f); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	return f.Commit(path)
}

// WriteFileAtomic writes data to path with mode perm (see WriteAtomic).
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return WriteAtomic(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteBlob writes the content of r to path (mode 0600, see WriteAtomic),
// verifying it against want and size (-1 when unknown) as it streams: a
// mismatch (ErrDigestMismatch, ErrSizeMismatch) leaves path untouched.
func WriteBlob(path string, r io.Reader, want digest.Digest, size int64) error {
	v, err := NewVerifier(r, want, size)
	if err != nil {
		return err
	}
	return WriteAtomic(path, 0o600, func(w io.Writer) error {
		_, err := io.Copy(w, v)
		return err
	})
}
