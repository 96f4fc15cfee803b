package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/storagesetup/loop/looptest"
)

// TestBtrfsSizeLimit: on a loop-backed btrfs, a store whose storage.conf
// gives the btrfs driver size=10M; a 20 MB dd in a container fails with
// "Disk quota exceeded" inside the container, the host filesystem and the
// store go on working, a write under the limit succeeds, the limit
// survives a commit, a --storage-opt size wins over storage.conf, and the
// vfs driver refuses size=.
func TestBtrfsSizeLimit(t *testing.T) {
	requiresRoot(t)
	fs := looptest.New(t, "btrfs", 512<<20, nil, "")
	conf := filepath.Join(t.TempDir(), "storage.conf")
	must(t, os.WriteFile(conf, []byte("[storage]\ndriver = \"btrfs\"\n[storage.options.btrfs]\nsize = \"10M\"\n"), 0o644))
	e := &env{t: t, root: fs.Dir, conf: conf}
	t.Cleanup(func() { e.kiln("unmount", "--all") })
	if out := e.mustKiln("info"); !strings.Contains(out, "Container size limit") {
		t.Fatalf("kiln info shows no size limit:\n%s", out)
	}
	e.busybox()
	c := e.mustKiln("from", "localhost/busybox")
	dd := func(c, file string, mb int) (string, int) {
		_, errOut, code := e.kiln("run", c, "--", "/bin/busybox", "dd", "if=/dev/zero", "of=/"+file, "bs=1M", "count="+strconv.Itoa(mb))
		return errOut, code
	}

	errOut, code := dd(c, "big", 20)
	if code == 0 || !strings.Contains(errOut, "Disk quota exceeded") || !strings.Contains(errOut, "dd:") {
		t.Fatalf("20 MB dd in a 10M container: exit %d, stderr:\n%s\nwant dd's own \"Disk quota exceeded\" and a non-zero exit", code, errOut)
	}
	// The host filesystem (the same btrfs) and the store stay usable.
	must(t, os.WriteFile(filepath.Join(fs.Dir, "host-file"), make([]byte, 20<<20), 0o644))
	must(t, os.Remove(filepath.Join(fs.Dir, "host-file")))
	// A container at its limit cannot even have /proc made for a run
	// (kiln run says so); the host removes the file through the mount.
	if _, errOut, code := e.kiln("run", c, "--", "/bin/busybox", "true"); code == 0 {
		t.Log("a run in a full container worked")
	} else if !strings.Contains(errOut, "disk quota exceeded") {
		t.Errorf("a run in a full container: exit %d: %s", code, errOut)
	}
	mp := e.mustKiln("mount", c)
	must(t, os.Remove(filepath.Join(mp, "big")))
	e.mustKiln("unmount", c)
	if errOut, code := dd(c, "small", 5); code != 0 {
		t.Fatalf("5 MB dd in a 10M container: exit %d: %s", code, errOut)
	}
	e.mustKiln("images")

	// The limit stays across a commit: the container is on a new
	// subvolume, and the committed layer has no limit.
	e.mustKiln("commit", c, "localhost/quota-committed")
	if errOut, code := dd(c, "big", 20); code == 0 || !strings.Contains(errOut, "Disk quota exceeded") {
		t.Fatalf("20 MB dd after a commit: exit %d: %s", code, errOut)
	}
	c2 := e.mustKiln("from", "localhost/quota-committed")
	if errOut, code := dd(c2, "more", 4); code != 0 {
		t.Fatalf("4 MB dd on an image holding 5 MB of writes: exit %d: %s", code, errOut)
	}
	e.mustKiln("rm", c, c2)

	// The flag wins over storage.conf.
	c3 := e.mustKiln("--storage-opt", "size=30M", "from", "localhost/busybox")
	if errOut, code := dd(c3, "big", 20); code != 0 {
		t.Fatalf("20 MB dd in a container made with --storage-opt size=30M: exit %d: %s", code, errOut)
	}
	e.mustKiln("rm", c3)
	if out, errOut, code := e.kiln("storage", "check"); code != 0 {
		t.Fatalf("storage check: exit %d\n%s\n%s", code, out, errOut)
	}
	// Every limit went with its container (the kernel deletes the
	// qgroups of removed subvolumes once its cleaner has dropped them).
	if out, err := exec.Command("btrfs", "qgroup", "show", "-e", "--raw", "--sync", fs.Dir).CombinedOutput(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) >= 4 && strings.HasPrefix(f[0], "0/") && f[3] != "none" {
				t.Errorf("a qgroup keeps a limit after its container was removed:\n%s", out)
			}
		}
	}
}

// TestVfsRefusesSize: where the size cannot be enforced it is refused
// with a clear error.
func TestVfsRefusesSize(t *testing.T) {
	e := newEnv(t, "vfs")
	_, errOut, code := e.kiln("--storage-opt", "size=10M", "images")
	if code == 0 || !strings.Contains(errOut, "vfs driver cannot limit a container's size") {
		t.Fatalf("vfs with size=10M: exit %d: %s", code, errOut)
	}
}
