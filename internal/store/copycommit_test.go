package store

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	digest "github.com/opencontainers/go-digest"
)

// TestCommitWhileBusy: a commit while a process has a file open in the
// container's mount copies instead of promoting, leaves the mount in
// place, and a later commit (not busy) stacks on it with the right
// files; the store checks out.
func TestCommitWhileBusy(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	defer s.Close()
	base := oneFileTar(t, "base.txt", "base")
	l0, err := s.ApplyLayer(ctx, "", digestOf(base), bytes.NewReader(base))
	must(t, err)
	c, err := s.CreateContainer(ctx, "busy", "", l0.ID, []byte("{}"))
	must(t, err)
	mp, err := s.Mount(ctx, c.ID)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(mp, "one.txt"), []byte("one"), 0o644))
	held, err := os.Open(filepath.Join(mp, "one.txt")) // makes the mount busy
	must(t, err)
	l1, err := s.CommitLayer(ctx, c.ID, CommitOptions{})
	held.Close()
	if err != nil {
		t.Fatalf("commit while busy: %v", err)
	}
	if _, err := os.Stat(filepath.Join(mp, "one.txt")); err != nil {
		t.Fatalf("the mount went away under the busy process: %v", err)
	}
	must(t, os.WriteFile(filepath.Join(mp, "two.txt"), []byte("two"), 0o644))
	must(t, os.Remove(filepath.Join(mp, "base.txt")))
	l2, err := s.CommitLayer(ctx, c.ID, CommitOptions{})
	must(t, err)
	if l2.Parent != l1.ID || l1.Parent != l0.ID {
		t.Errorf("chain %s -> %s -> %s, want l2 -> l1 -> l0", l2.Parent, l1.Parent, l0.ID)
	}
	v, err := s.CreateContainer(ctx, "view", "", l2.ID, []byte("{}"))
	must(t, err)
	vmp, err := s.Mount(ctx, v.ID)
	must(t, err)
	for name, want := range map[string]string{"one.txt": "one", "two.txt": "two"} {
		if b, err := os.ReadFile(filepath.Join(vmp, name)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v", name, b, err)
		}
	}
	if _, err := os.Stat(filepath.Join(vmp, "base.txt")); err == nil {
		t.Error("base.txt, removed before the second commit, is back")
	}
	for _, id := range []string{v.ID, c.ID} {
		must(t, s.Unmount(ctx, id, true))
	}
	rep, err := s.Check(ctx, CheckOptions{})
	must(t, err)
	for _, p := range rep.Problems {
		t.Errorf("check: %v %s: %s", p.Kind, p.Object, p.Detail)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func digestOf(b []byte) digest.Digest { return digest.NewDigestFromBytes(digest.SHA256, sha256Sum(b)) }

// TestRecoverInterruptedRebase: a commit that died while moving a
// container onto an existing equal layer (its snapshot removed, not yet
// remade) is finished by the next Open: the container mounts, on the
// layer, with its files.
func TestRecoverInterruptedRebase(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	base := oneFileTar(t, "f", "data")
	l, err := s.ApplyLayer(ctx, "", digestOf(base), bytes.NewReader(base))
	must(t, err)
	c, err := s.CreateContainer(ctx, "c", "", "", []byte("{}"))
	must(t, err)
	// Play the first half of rebase as a process that then died.
	must(t, s.updateContainer(ctx, c.ID, `UPDATE containers SET promoting=?, owner=? WHERE id=?`, rebasePrefix+l.ID, "999999999:0", c.ID))
	must(t, s.driver.Remove(ctx, c.ID))
	s.Close()

	s = openTest(t, dir)
	defer s.Close()
	got, err := s.Container(ctx, c.ID)
	must(t, err)
	if got.Layer != l.ID {
		t.Errorf("container layer %q, want %q", got.Layer, l.ID)
	}
	mp, err := s.Mount(ctx, c.ID)
	must(t, err)
	defer s.Unmount(ctx, c.ID, true)
	if b, err := os.ReadFile(filepath.Join(mp, "f")); err != nil || string(b) != "data" {
		t.Errorf("f = %q, %v", b, err)
	}
}
