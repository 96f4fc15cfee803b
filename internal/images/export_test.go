package images

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/testbase"
)

// TestExport writes the rootfs of the rich umoci base (whiteouts, an
// opaque directory, hard links, an xattr, a device, owners) to a
// directory, and that of the busybox base as a tar that GNU tar unpacks,
// and checks both on disk; the temporary containers are gone after. (The
// tar leaves out user.* xattrs: archive.WriteTreeDiff, containerd's
// WriteDiff, keeps security.capability only.)
func TestExport(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	pull := func(k testbase.Kind) string {
		layout := testbase.OCILayout(t, testbase.Spec{Kind: k, Format: testbase.OCI})
		img, err := Pull(ctx, st, layout.Ref, PullOptions{System: testSystem(t)})
		must(t, err)
		return img.ID
	}

	dir := filepath.Join(t.TempDir(), "out", "rootfs")
	must(t, ExportDir(ctx, st, pull(testbase.Rich), dir))
	testbase.Verify(t, dir, testbase.Rich)

	file := filepath.Join(t.TempDir(), "rootfs.tar")
	f, err := os.Create(file)
	must(t, err)
	must(t, ExportTar(ctx, st, pull(testbase.Busybox), f))
	must(t, f.Close())
	unpacked := t.TempDir()
	if out, err := exec.Command("tar", "--xattrs", "--xattrs-include=*", "--same-owner", "-xpf", file, "-C", unpacked).CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v\n%s", err, out)
	}
	testbase.Verify(t, unpacked, testbase.Busybox)

	cs, err := container.All(ctx, st)
	must(t, err)
	if len(cs) != 0 {
		t.Errorf("%d containers left after the exports, want none", len(cs))
	}
}
