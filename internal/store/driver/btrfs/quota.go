package btrfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	units "github.com/docker/go-units"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/digestio"
	"github.com/kiln-build/kiln/internal/store/driver"
)

// Per-container size limits through quota groups (qgroups).
//
// Every subvolume has a level-0 qgroup that counts two figures:
// referenced (every extent the subvolume reaches, those it shares with
// the snapshot it was made from included) and exclusive (extents no other
// subvolume reaches). A container is a snapshot of its image's top layer,
// so its referenced bytes start at the image's size while its exclusive
// bytes start near zero and grow by exactly what it writes: new files,
// and the copied-on-write extents of files it changes. The limit is
// therefore max_excl: "this container may write at most SIZE",
// whatever the size of its image (max_rfer would count the image too, so
// a 10M limit could not even hold a 50M image).
//
// With the "size" option, New enables quotas on the filesystem (once; it
// is a filesystem-wide setting that stays on) and Create records the
// limit in the snapshot's "quota" file. The first writable mount sets
// the limit on the snapshot's subvolume qgroup; layers are never mounted
// writable, so they never get one. Promote turns the container's
// subvolume into the layer, lifts the limit from it and sets it on the
// container's new subvolume. Remove lifts the limit and deletes the
// qgroup with the subvolume.

const (
	ioctlQuotaCtl     = 0xc0109428 // _IOWR(0x94, 40, struct btrfs_ioctl_quota_ctl_args)
	ioctlQgroupCreate = 0x4010942a // _IOW(0x94, 42, struct btrfs_ioctl_qgroup_create_args)
	ioctlQgroupLimit  = 0x8030942b // _IOR(0x94, 43, struct btrfs_ioctl_qgroup_limit_args)
	ioctlInoLookup    = 0xd0009412 // _IOWR(0x94, 18, struct btrfs_ioctl_ino_lookup_args)
	ioctlFsInfo       = 0x8400941f // _IOR(0x94, 31, struct btrfs_ioctl_fs_info_args)

	quotaCtlEnable     = 1      // BTRFS_QUOTA_CTL_ENABLE
	qgroupLimitMaxExcl = 1 << 1 // BTRFS_QGROUP_LIMIT_MAX_EXCL
	limitNone          = ^uint64(0)

	quotaFile = "quota"
)

// qgroupLimitArgs is struct btrfs_ioctl_qgroup_limit_args (48 bytes).
type qgroupLimitArgs struct {
	qgroupID                                  uint64
	flags, maxRfer, maxExcl, rsvRfer, rsvExcl uint64
}

// ioctlPath runs one btrfs ioctl on the file or directory at path.
func ioctlPath(path string, req uintptr, arg unsafe.Pointer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), req, uintptr(arg)); errno != 0 {
		return errno
	}
	return nil
}

// enableQuota turns quota groups on for the filesystem of path; it is a
// no-op when they are on already.
func enableQuota(path string) error {
	args := struct{ cmd, status uint64 }{cmd: quotaCtlEnable}
	if err := ioctlPath(path, ioctlQuotaCtl, unsafe.Pointer(&args)); err != nil {
		return fmt.Errorf("enabling btrfs quotas: %w", err)
	}
	return nil
}

// setLimit sets the exclusive-bytes limit of the subvolume at path's
// own qgroup; limitNone lifts it.
func setLimit(path string, bytes uint64) error {
	args := qgroupLimitArgs{flags: qgroupLimitMaxExcl, maxExcl: bytes} // qgroup 0: the subvolume of the fd
	return ioctlPath(path, ioctlQgroupLimit, unsafe.Pointer(&args))
}

// subvolID is the id of the subvolume at path (its qgroup is 0/id).
func subvolID(path string) (uint64, error) {
	var args struct {
		treeID, objectID uint64
		name             [4080]byte
	}
	args.objectID = firstFreeObjectID
	if err := ioctlPath(path, ioctlInoLookup, unsafe.Pointer(&args)); err != nil {
		return 0, err
	}
	return args.treeID, nil
}

// destroyQgroup deletes qgroup 0/id on the filesystem of dir.
func destroyQgroup(dir string, id uint64) error {
	args := struct{ create, qgroupID uint64 }{create: 0, qgroupID: id}
	return ioctlPath(dir, ioctlQgroupCreate, unsafe.Pointer(&args))
}

// quotaEnabled reports whether quota groups are on for the filesystem
// of path: sysfs shows a qgroups directory exactly then.
func quotaEnabled(path string) bool {
	var args [1024]byte // struct btrfs_ioctl_fs_info_args; fsid at 16
	if ioctlPath(path, ioctlFsInfo, unsafe.Pointer(&args[0])) != nil {
		return false
	}
	f := args[16:32]
	uuid := fmt.Sprintf("%x-%x-%x-%x-%x", f[0:4], f[4:6], f[6:8], f[8:10], f[10:16])
	_, err := os.Stat(filepath.Join("/sys/fs/btrfs", uuid, "qgroups"))
	return err == nil
}

// checkQuota enables quotas for a size option, refusing it with
// ErrUnsupported where the filesystem will not enforce limits.
func checkQuota(home string, size uint64) error {
	if size == 0 {
		return nil
	}
	if err := enableQuota(home); err != nil {
		hint := ""
		if errors.Is(err, unix.EPERM) {
			hint = " (it needs CAP_SYS_ADMIN: run as root)"
		}
		return fmt.Errorf("%w: btrfs size option needs quota groups on the filesystem of %s: %v%s", driver.ErrUnsupported, home, err, hint)
	}
	return nil
}

// readQuota returns the limit recorded for snapshot id, 0 for none.
func (d *Driver) readQuota(id string) uint64 {
	b, err := os.ReadFile(filepath.Join(d.Dir(id), quotaFile))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// recordQuota marks a snapshot being made in dir (its temp directory)
// for the configured limit (Create hook).
func (d *Driver) recordQuota(dir string) error {
	if d.quotaSize == 0 {
		return nil
	}
	return digestio.WriteFileAtomic(filepath.Join(dir, quotaFile), []byte(strconv.FormatUint(d.quotaSize, 10)), 0o600)
}

// applyQuota sets a marked snapshot's limit on its subvolume before it
// is written to (Mount and Promote hook). It is idempotent. Quotas
// switched off since are switched on again: the snapshot was promised
// its limit.
func (d *Driver) applyQuota(id string) error {
	size := d.readQuota(id)
	if size == 0 {
		return nil
	}
	content := d.ContentDir(id)
	err := setLimit(content, size)
	if errors.Is(err, unix.ENOTCONN) { // quotas are off
		if err = enableQuota(content); err == nil {
			err = setLimit(content, size)
		}
	}
	if err != nil {
		return fmt.Errorf("limiting the size of %s to %s: %w", id, units.BytesSize(float64(size)), err)
	}
	return nil
}

// releaseQuota lifts the limit a container's subvolume took with it
// into layer to (Promote hook).
func (d *Driver) releaseQuota(from, to string) error {
	if d.readQuota(from) == 0 {
		return nil
	}
	if err := setLimit(d.ContentDir(to), limitNone); err != nil && !errors.Is(err, unix.ENOTCONN) {
		return fmt.Errorf("lifting the size limit of layer %s: %w", to, err)
	}
	return nil
}

// dropQuota lifts the limit of a snapshot about to be removed and
// returns its subvolume's id, whose qgroup goes after it (Remove hook);
// 0 when it has no limit.
func (d *Driver) dropQuota(id string) uint64 {
	if d.readQuota(id) == 0 {
		return 0
	}
	content := d.ContentDir(id)
	sid, err := subvolID(content)
	if err != nil {
		return 0
	}
	_ = setLimit(content, limitNone)
	return sid
}

// forgetQgroup deletes the qgroup of a removed subvolume. While the
// kernel's cleaner has not dropped the subvolume yet the qgroup is still
// charged and busy; recent kernels (6.18 here) then delete it themselves
// once it is dropped, older ones leave it behind, empty and without a
// limit.
func (d *Driver) forgetQgroup(sid uint64) {
	if sid != 0 {
		_ = destroyQgroup(d.Layout.Home, sid)
	}
}

// quotaStatus describes quota support for `kiln info` (Status hook).
func (d *Driver) quotaStatus() [][2]string {
	st := [][2]string{{"Quota Groups Enabled", strconv.FormatBool(quotaEnabled(d.Layout.Home))}}
	if d.quotaSize > 0 {
		st = append(st, [2]string{"Container size limit", units.BytesSize(float64(d.quotaSize)) + " (exclusive bytes per container)"})
	}
	return st
}
