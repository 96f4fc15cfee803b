package store

import (
	"archive/tar"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// clampedNames collects, from a layer tar streamed through it, the names
// whose modification time the diff clamped to bound (commit --timestamp):
// the snapshot's own files get that time too, so that the image runs here
// with the file times it has everywhere else.
type clampedNames struct {
	bound time.Time
	pw    *io.PipeWriter
	done  chan struct{}
	names []string
}

// tee returns a reader that passes r on and feeds its tar to c.
func (c *clampedNames) tee(r io.Reader) io.Reader {
	pr, pw := io.Pipe()
	c.pw, c.done = pw, make(chan struct{})
	go func() {
		defer close(c.done)
		tr := tar.NewReader(pr)
		for {
			h, err := tr.Next()
			if err != nil {
				pr.CloseWithError(err) // unblocks the tee; drained below
				io.Copy(io.Discard, pr)
				return
			}
			base := path.Base(h.Name)
			if strings.HasPrefix(base, ".wh.") || h.ModTime.Unix() != c.bound.Unix() {
				continue
			}
			c.names = append(c.names, h.Name)
		}
	}()
	return io.TeeReader(r, &lenientWriter{w: pw})
}

// finish waits for the tar to be read and returns the names.
func (c *clampedNames) finish() []string {
	c.pw.Close()
	<-c.done
	return c.names
}

// lenientWriter passes writes on until one fails, then drops the rest:
// the tar reader stopping must not fail the hash it is teed from.
type lenientWriter struct {
	w      io.Writer
	failed bool
}

func (l *lenientWriter) Write(p []byte) (int, error) {
	if !l.failed {
		if _, err := l.w.Write(p); err != nil {
			l.failed = true
		}
	}
	return len(p), nil
}

// clampSnapshotTimes gives names in snapshot id's own content the time
// bound; nothing to do without names.
func (s *Store) clampSnapshotTimes(id string, names []string, bound *time.Time) error {
	if len(names) == 0 || bound == nil {
		return nil
	}
	root, err := s.driver.Content(id)
	if err != nil {
		return err
	}
	return clampTimes(root, names, *bound)
}

// clampTimes sets the modification time of each name under root to
// bound, without following symlinks.
func clampTimes(root string, names []string, bound time.Time) error {
	ts := []unix.Timespec{{Sec: 0, Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(bound.UnixNano())}
	for _, n := range names {
		p := filepath.Join(root, filepath.Clean("/"+n))
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil && !os.IsNotExist(err) {
			return &os.PathError{Op: "setting the time of", Path: p, Err: err}
		}
	}
	return nil
}
