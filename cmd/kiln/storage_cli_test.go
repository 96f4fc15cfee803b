package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// TestStorageExportResetImport is the administrator workflow in
// steps: export, reset (refused without --force, then printing what it
// removed), import into a store of another driver, everything back.
func TestStorageExportResetImport(t *testing.T) {
	se := newStorageEnv(t, "", "overlay")
	se.mustKiln("--storage-driver", "overlay", "images")
	se.populate()
	want := se.snapshot()
	exp := filepath.Join(t.TempDir(), "export")
	out := se.mustKiln("storage", "export", "--dir", exp)
	if !strings.Contains(out, "exported 3 images") {
		t.Errorf("export said %q", out)
	}
	if _, err := os.Stat(filepath.Join(exp, "index.json")); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := se.kiln("storage", "reset"); code == 0 || !strings.Contains(errOut, "--force") {
		t.Fatalf("reset without --force: exit %d, %q", code, errOut)
	}
	out = se.mustKiln("storage", "reset", "--force")
	// 5 names: busybox twice, stage-one, and the pulled image as
	// localhost/pulled and docker.io/library/pulled (oci:DIR:pulled is
	// named by its NAME, as Buildah names it).
	for _, w := range []string{"unmounted ", "removed 3 images (5 names), 1 containers"} {
		if !strings.Contains(out, w) {
			t.Errorf("reset said %q, want %q in it", out, w)
		}
	}
	if left, _ := os.ReadDir(filepath.Join(se.root, "root")); len(left) != 0 {
		t.Errorf("reset left %d entries in the root", len(left))
	}
	must(t, os.WriteFile(se.conf, []byte("[storage]\ndriver = \"vfs\"\n"), 0o644))
	if out := se.mustKiln("images", "-q"); out != "" {
		t.Fatalf("images after reset: %q", out)
	}
	out = se.mustKiln("storage", "import", "--dir", exp)
	if !strings.Contains(out, "imported 3 images") {
		t.Errorf("import said %q", out)
	}
	if diff := cmp.Diff(want, se.snapshot()); diff != "" {
		t.Fatalf("after export, reset and import into vfs (-before +after):\n%s", diff)
	}
	// A second import adds nothing and breaks nothing.
	if out := se.mustKiln("storage", "import", "--dir", exp); !strings.Contains(out, "imported 0 images, 0 layers, 0 containers") {
		t.Errorf("second import said %q", out)
	}
	// An unfinished export is refused before anything is written.
	must(t, os.Remove(filepath.Join(exp, "index.json")))
	if _, errOut, code := se.kiln("storage", "import", "--dir", exp); code == 0 || !strings.Contains(errOut, "did not finish") {
		t.Errorf("import of an export without its index: exit %d, %q", code, errOut)
	}
}

// TestStorageCheckCLI: damage makes check exit 1 and say what it found;
// --repair mends it and exits 0.
func TestStorageCheckCLI(t *testing.T) {
	e := newEnv(t, "overlay")
	e.busybox()
	e.mustKiln("tag", "localhost/busybox", "localhost/other")
	if out := e.mustKiln("storage", "check", "--digests"); !strings.Contains(out, "0 problems") {
		t.Fatalf("check of a sound store: %q", out)
	}
	blobs := filepath.Join(e.root, "root", "blobs", "sha256")
	entries, err := os.ReadDir(blobs)
	must(t, err)
	var manifest string
	for _, en := range entries {
		b, _ := os.ReadFile(filepath.Join(blobs, en.Name()))
		if strings.Contains(string(b), `"config"`) {
			manifest = filepath.Join(blobs, en.Name())
		}
	}
	must(t, os.WriteFile(manifest, []byte(`{"rotten": true}`), 0o600))
	out, _, code := e.kiln("storage", "check")
	if code != 0 {
		t.Fatalf("check without --digests does not hash: exit %d, %q", code, out)
	}
	out, errOut, code := e.kiln("storage", "check", "--digests")
	if code != 1 || !strings.Contains(out, "corrupted blob") || !strings.Contains(errOut, "--repair") {
		t.Fatalf("check --digests of a corrupted manifest: exit %d, %q, %q", code, out, errOut)
	}
	out = e.mustKiln("storage", "check", "--digests", "--repair")
	if !strings.Contains(out, "[repaired]") || !strings.Contains(out, "0 remain") {
		t.Errorf("check --repair said %q", out)
	}
	if out := e.mustKiln("images", "-q"); out != "" {
		t.Errorf("the image whose manifest rotted is still listed: %q", out)
	}
}

// TestPruneCLI: image prune asks first, removes unnamed images, filters
// by label and age, and prune --all keeps what a container uses.
func TestPruneCLI(t *testing.T) {
	e := newEnv(t, "overlay")
	e.busybox()
	keep := e.labelled("localhost/keep", "--label", "team=a")
	gone := e.labelled("localhost/gone", "--label", "team=b")
	c := e.mustKiln("from", "localhost/busybox")
	e.mustKiln("config", "--label", "dangling=yes", c)
	dangling := e.mustKiln("commit", "-q", c)
	if out, _, _ := e.run("", nil, "image", "prune"); !strings.Contains(out, "nothing removed") {
		t.Errorf("image prune without --force and no answer: %q", out)
	}
	out, _, _ := e.run("y\n", nil, "image", "prune")
	if !strings.Contains(out, dangling) || !strings.Contains(out, "Total reclaimed space") {
		t.Errorf("image prune answered y: %q, want %s removed", out, dangling[:12])
	}
	out = e.mustKiln("image", "prune", "--all", "--force", "--filter", "label=team=b")
	if !strings.Contains(out, gone) || strings.Contains(out, keep) {
		t.Errorf("prune --filter label=team=b: %q", out)
	}
	if out := e.mustKiln("image", "prune", "--all", "--force", "--filter", "until=1h"); strings.Contains(out, keep) {
		t.Errorf("prune --filter until=1h removed a new image: %q", out)
	}
	busybox := e.mustKiln("images", "-q", "localhost/busybox")
	out = e.mustKiln("prune", "--all", "--force")
	if !strings.Contains(out, keep) {
		t.Errorf("prune --all: %q", out)
	}
	if imgs := e.mustKiln("images", "-q"); imgs != busybox {
		t.Errorf("images left after prune --all: %q, want only %s, which a container uses", imgs, busybox)
	}
	if out := e.mustKiln("storage", "check", "--digests"); !strings.Contains(out, "0 problems") {
		t.Errorf("check after prune: %q", out)
	}
}

// TestSpaceGuardCLI: below min_free_space kiln refuses before writing
// and says what is free and what prune would reclaim; with the guard off,
// a commit that fills a small tmpfs fails within seconds with a clean
// error and leaves a consistent store.
func TestSpaceGuardCLI(t *testing.T) {
	requiresRoot(t)
	dir := t.TempDir()
	must(t, unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64m"))
	t.Cleanup(func() { exec.Command("umount", "-R", "-l", dir).Run() })
	e := &env{t: t, root: dir}
	t.Cleanup(func() { e.kiln("storage", "reset", "--force") })
	e.mustKiln("--storage-driver", "vfs", "images")
	e.busybox()
	_, errOut, code := e.kiln("--storage-opt", "min_free_space=100%", "from", "localhost/busybox")
	if code == 0 || !strings.Contains(errOut, "less than min_free_space") || !strings.Contains(errOut, "kiln prune") {
		t.Fatalf("from below min_free_space: exit %d, %q", code, errOut)
	}
	c := e.mustKiln("--storage-opt", "min_free_space=0", "from", "localhost/busybox")
	mp := e.mustKiln("mount", c)
	f, err := os.Create(filepath.Join(mp, "fill"))
	must(t, err)
	chunk := make([]byte, 1<<20)
	for i := 0; i < 40; i++ {
		if _, err := f.Write(chunk); err != nil {
			break // the container's own write filled the disk: fine
		}
	}
	f.Close()
	start := time.Now()
	_, errOut, code = e.kiln("--storage-opt", "min_free_space=0", "commit", c, "localhost/full")
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("commit on a full disk took %v", took)
	}
	// vfs commits by copying the tree: 40M more on a 64M disk, refused
	// before a byte is copied.
	if code == 0 || !strings.Contains(errOut, "needs about") || !strings.Contains(errOut, "nothing was written") {
		t.Errorf("commit on a nearly full disk: exit %d, %q", code, errOut)
	}
	must(t, os.Remove(filepath.Join(mp, "fill")))
	if out := e.mustKiln("storage", "check", "--digests"); !strings.Contains(out, "0 problems") {
		t.Errorf("check after running out of space: %q", out)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "root", "tmp")); len(left) != 0 {
		t.Errorf("%d temp files left after running out of space", len(left))
	}
}
