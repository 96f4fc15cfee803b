package container

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/internal/store"
	_ "github.com/kiln-build/kiln/internal/store/driver/overlay"
	"github.com/kiln-build/kiln/internal/testenv"
)

// TestCopyKeepsHardLinks: files of one source that are hard links of one
// inode are copied once and linked, with the copy's owner and mode on
// the shared inode; files of different sources are copied apart (as
// BuildKit copies each source on its own).
func TestCopyKeepsHardLinks(t *testing.T) {
	testenv.NeedRoot(t, "the store mounts overlay snapshots and keeps file owners")
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, store.Options{Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "run"), Driver: "overlay"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, err := New(ctx, st, NewOptions{Image: "scratch", Name: "links"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Remove(ctx) })

	src := filepath.Join(dir, "src")
	write := func(p, content string) {
		t.Helper()
		p = filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	link := func(old, new string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, new)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(filepath.Join(src, old), filepath.Join(src, new)); err != nil {
			t.Fatal(err)
		}
	}
	write("tree/a", "one\n")
	link("tree/a", "tree/b")
	link("tree/a", "tree/sub/c")
	write("tree/d", "two\n")
	link("tree/d", "other/e") // outside the tree copied below

	copies := []CopyOptions{
		{Sources: []string{"tree"}, Dest: "/copied", ContextDir: src, Chown: "1:2", Chmod: "0604"},
		{Sources: []string{"tree/a", "tree/b"}, Dest: "/two/", ContextDir: src},
		{Sources: []string{"tree/d", "other/e"}, Dest: "/same/", ContextDir: src},
	}
	for _, o := range copies {
		if err := c.Copy(ctx, o); err != nil {
			t.Fatalf("Copy(%v): %v", o.Sources, err)
		}
	}
	root, err := c.Mount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type file struct {
		Content   string
		Mode      os.FileMode
		UID, GID  uint32
		Inode     int // numbered in order of first appearance
		LinkCount uint64
	}
	inodes := map[uint64]int{}
	got := map[string]file{}
	for _, p := range []string{"/copied/a", "/copied/b", "/copied/sub/c", "/copied/d", "/two/a", "/two/b", "/same/d", "/same/e"} {
		full := filepath.Join(root, p)
		data, err := os.ReadFile(full)
		if err != nil {
			t.Fatal(err)
		}
		var s syscall.Stat_t
		if err := syscall.Lstat(full, &s); err != nil {
			t.Fatal(err)
		}
		if _, ok := inodes[s.Ino]; !ok {
			inodes[s.Ino] = len(inodes) + 1
		}
		got[p] = file{string(data), os.FileMode(s.Mode & 0o7777), s.Uid, s.Gid, inodes[s.Ino], uint64(s.Nlink)}
	}
	want := map[string]file{
		"/copied/a":     {"one\n", 0o604, 1, 2, 1, 3},
		"/copied/b":     {"one\n", 0o604, 1, 2, 1, 3},
		"/copied/sub/c": {"one\n", 0o604, 1, 2, 1, 3},
		"/copied/d":     {"two\n", 0o604, 1, 2, 2, 1},
		"/two/a":        {"one\n", 0o640, 0, 0, 3, 1},
		"/two/b":        {"one\n", 0o640, 0, 0, 4, 1},
		"/same/d":       {"two\n", 0o640, 0, 0, 5, 1},
		"/same/e":       {"two\n", 0o640, 0, 0, 6, 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("copied files (-want +got):\n%s", diff)
	}
}
