package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCommitClampsSnapshotTimes: with an MTimeBound (commit --timestamp),
// the new layer's own files have the bound as their modification time on
// disk, as in its tar, so that a container of the image sees what a pull
// of it elsewhere would; older files and the tar's digest are unchanged.
func TestCommitClampsSnapshotTimes(t *testing.T) {
	ctx := context.Background()
	for _, driver := range []string{"overlay", "vfs"} {
		t.Run(driver, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(ctx, Options{Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "run"), Driver: driver})
			must(t, err)
			defer s.Close()
			c, err := s.CreateContainer(ctx, "c", "", "", []byte("{}"))
			must(t, err)
			mp, err := s.Mount(ctx, c.ID)
			must(t, err)
			must(t, os.MkdirAll(filepath.Join(mp, "d"), 0o755))
			must(t, os.WriteFile(filepath.Join(mp, "d", "new"), []byte("data"), 0o644))
			must(t, os.Symlink("new", filepath.Join(mp, "d", "link")))
			old := time.Unix(100, 0)
			must(t, os.WriteFile(filepath.Join(mp, "old"), []byte("old"), 0o644))
			must(t, os.Chtimes(filepath.Join(mp, "old"), old, old))
			must(t, s.Unmount(ctx, c.ID, true))

			bound := time.Unix(1000, 0)
			l, err := s.CommitLayer(ctx, c.ID, CommitOptions{MTimeBound: &bound})
			must(t, err)
			root, err := s.driver.Content(l.ID)
			must(t, err)
			for name, want := range map[string]time.Time{"d": bound, "d/new": bound, "d/link": bound, "old": old} {
				fi, err := os.Lstat(filepath.Join(root, name))
				must(t, err)
				if !fi.ModTime().Equal(want) {
					t.Errorf("%s: modified %v on disk, want %v", name, fi.ModTime(), want)
				}
			}
			// The layer's tar, made again from the files, is the one hashed.
			h := newCountingHash()
			must(t, s.LayerTar(ctx, l, h))
			if h.digest() != l.DiffID {
				t.Errorf("layer tar made again hashes to %s, want %s", h.digest(), l.DiffID)
			}
		})
	}
}
