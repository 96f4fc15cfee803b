package btrfs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kiln-build/kiln/internal/storagesetup/loop/looptest"
	"github.com/kiln-build/kiln/internal/store/driver"
	"github.com/kiln-build/kiln/internal/store/driver/drivertest"
)

// newBtrfs mounts a fresh loop-backed btrfs for one test.
func newBtrfs(t *testing.T) string {
	t.Helper()
	drivertest.RequiresRoot(t)
	return looptest.New(t, "btrfs", 512<<20, nil, "").Dir
}

func TestConformance(t *testing.T) {
	drivertest.Run(t, func(t *testing.T) driver.Driver {
		d, err := New(driver.Options{Home: filepath.Join(newBtrfs(t), "btrfs")})
		if err != nil {
			t.Fatal(err)
		}
		return d
	})
}

func TestRefusesOtherFilesystems(t *testing.T) {
	_, err := New(driver.Options{Home: t.TempDir()})
	if !errors.Is(err, driver.ErrUnsupported) {
		t.Fatalf("New on a non-btrfs dir = %v, want ErrUnsupported", err)
	}
}

// TestSnapshotsAreSubvolumes checks that layers and containers really are
// subvolumes, that a container made inside a container is removed with
// it, and that nothing is left under home after removal.
func TestSnapshotsAreSubvolumes(t *testing.T) {
	ctx := context.Background()
	home := filepath.Join(newBtrfs(t), "btrfs")
	d, err := New(driver.Options{Home: home})
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(d.Create(ctx, "base", ""))
	must(d.Create(ctx, "ctr", "base"))
	p, err := d.Mount(ctx, "ctr", false)
	must(err)
	for _, id := range []string{"base", "ctr"} {
		if c := filepath.Join(home, id, "fs"); !isSubvolume(c) {
			t.Errorf("%s is not a subvolume", c)
		}
	}
	must(subvolCreate(filepath.Join(p, "nested")))
	must(os.WriteFile(filepath.Join(p, "nested", "f"), []byte("x"), 0o644))
	must(d.Promote(ctx, "ctr", "l2"))
	if !isSubvolume(filepath.Join(home, "ctr", "fs")) || !isSubvolume(filepath.Join(home, "l2", "fs")) {
		t.Error("promote did not leave two subvolumes")
	}
	for _, id := range []string{"ctr", "l2", "base"} {
		must(d.Remove(ctx, id))
	}
	left, err := os.ReadDir(home)
	must(err)
	if len(left) != 0 {
		t.Errorf("home holds %v after removing everything", left)
	}
}
