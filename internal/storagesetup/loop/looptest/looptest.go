// Package looptest makes real filesystems on sparse files for tests:
// mkfs on a file, attached to a loop device, mounted in a temp dir, and
// all of it undone when the test ends, whether it passed or not.
package looptest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/storagesetup/loop"
	"github.com/kiln-build/kiln/internal/testenv"
)

// FS is a mounted test filesystem.
type FS struct {
	Dir    string // where it is mounted
	Device string // the loop device
	File   string // the sparse image file
}

// mkfsArgs are the arguments that make each filesystem type quietly.
var mkfsArgs = map[string][]string{
	"xfs":   {"-f", "-q"},
	"btrfs": {"-f", "-q"},
	"ext4":  {"-F", "-q"},
}

// Image creates a sparse file of size bytes in a temp dir, removed at the
// end of the test. It ends the test unless it runs as root (testenv).
func Image(t testing.TB, size int64) string {
	t.Helper()
	testenv.NeedRoot(t, "loop devices and mounts")
	file := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return file
}

// New makes a fstype filesystem of size bytes (mkfs with the extra
// arguments) and mounts it with the mount options opts. It skips the test
// where mkfs for fstype is not installed or the kernel lacks fstype.
func New(t testing.TB, fstype string, size int64, extra []string, opts string) *FS {
	t.Helper()
	file := Image(t, size)
	mkfs := testenv.NeedBinary(t, "mkfs."+fstype)
	args := append(append(append([]string{}, mkfsArgs[fstype]...), extra...), file)
	if out, err := exec.Command(mkfs, args...).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.%s: %v\n%s", fstype, err, out)
	}
	dev, err := loop.Attach(file, true)
	if err != nil {
		testenv.Unavailable(t, "no loop device: %v", err)
	}
	defer dev.Close()
	fs := &FS{Dir: t.TempDir(), Device: dev.Path, File: file}
	t.Cleanup(func() { fs.cleanup(t) })
	if err := unix.Mount(dev.Path, fs.Dir, fstype, 0, opts); err != nil {
		if err == unix.ENODEV {
			testenv.Unavailable(t, "the kernel has no %s", fstype)
		}
		t.Fatalf("mounting %s %s on %s (%s): %v", fstype, dev.Path, fs.Dir, opts, err)
	}
	return fs
}

// cleanup unmounts (lazily when busy); autoclear then detaches the device,
// and Detach makes sure.
func (fs *FS) cleanup(t testing.TB) {
	for {
		err := unix.Unmount(fs.Dir, 0)
		if err == unix.EBUSY {
			_ = unix.Unmount(fs.Dir, unix.MNT_DETACH)
			break
		}
		if err != nil {
			break
		}
	}
	if loop.BackingFile(fs.Device) == fs.File {
		if err := loop.Detach(fs.Device); err != nil {
			t.Errorf("detaching %s: %v", fs.Device, err)
		}
	}
}

// RequireXFSQuota skips the test where the kernel's XFS has no quota
// support (CONFIG_XFS_QUOTA unset: mounting with prjquota fails with
// EINVAL). Such a kernel has no /proc/fs/xfs/xqmstat. It skips in CI too:
// a kernel option is not something CI can install (the CI machines' kernel
// lacks it); btrfs quota groups are tested instead.
func RequireXFSQuota(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/proc/fs/xfs/xqmstat"); err != nil {
		t.Skip("this kernel's XFS has no quota support (CONFIG_XFS_QUOTA is not set; a kernel build option, also unset on the CI machines), so no project quotas")
	}
}
