package store

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/testenv"
)

// TestMountsUnder: mount points strictly under a directory, names with
// spaces and tabs unescaped, deepest first; UnmountUnder removes them.
func TestMountsUnder(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.NeedRoot(t, "a store mounts and owns files")
	}
	dir := t.TempDir()
	outer := filepath.Join(dir, "a b")
	inner := filepath.Join(outer, "c\td")
	sibling := dir + "x" // shares the prefix as text, not as a path
	for _, mp := range []string{outer, inner, sibling} {
		if err := os.MkdirAll(mp, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", mp, "tmpfs", 0, "size=1m"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Unmount(mp, unix.MNT_DETACH); os.RemoveAll(mp) })
	}
	got, err := mountsUnder(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{inner, outer}, got); diff != "" {
		t.Errorf("mountsUnder (-want +got):\n%s", diff)
	}
	done, err := UnmountUnder(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{inner, outer}, done); diff != "" {
		t.Errorf("UnmountUnder (-want +got):\n%s", diff)
	}
	if got, _ := mountsUnder(dir); len(got) != 0 {
		t.Errorf("still mounted: %v", got)
	}
}
