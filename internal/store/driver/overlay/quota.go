package overlay

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

// Per-container size limits through project quotas (XFS mounted with
// prjquota; ext4 with the project feature works the same way).
//
// With the "size" option, Create records the limit in the snapshot's
// "quota" file. The first writable mount gives the snapshot directory a
// project ID of its own, with the inherit flag so that the upper and work
// directories and every file overlayfs writes carry it, and sets the
// project's hard block limit: a write past it fails with EDQUOT. Layers
// are never mounted writable, so they never get a limit. Promote moves
// the upper directory (still charged to the old project, whose limit it
// drops) into the layer; the container's next writable mount gives it a
// fresh project. Project IDs come from a counter in Home, starting at
// firstProjectID, under an flock.

const (
	fsIocFsGetXattr    = 0x801c581f // _IOR('X', 31, struct fsxattr)
	fsIocFsSetXattr    = 0x401c5820 // _IOW('X', 32, struct fsxattr)
	fsXflagProjInherit = 0x00000200

	qXGetQuota       = 0x5803 // XQM_CMD(3)
	qXSetQLim        = 0x5804 // XQM_CMD(4)
	qXGetQStat       = 0x5805 // XQM_CMD(5)
	prjQuota         = 2      // PRJQUOTA
	fsProjQuota      = 2      // FS_PROJ_QUOTA, fs_disk_quota.d_flags
	fsDqBSoft        = 1 << 2 // FS_DQ_BSOFT
	fsDqBHard        = 1 << 3 // FS_DQ_BHARD
	fsQuotaPdqEnfd   = 0x0020 // FS_QUOTA_PDQ_ENFD
	firstProjectID   = 100000
	quotaFile        = "quota"
	projectIDCounter = ".quota-projid"
)

// fsxattr is struct fsxattr of linux/fs.h.
type fsxattr struct {
	XFlags, ExtSize, NExtents, ProjID, CowExtSize uint32
	_                                             [8]byte
}

// diskQuota is struct fs_disk_quota of linux/dqblk_xfs.h (112 bytes).
type diskQuota struct {
	Version, Flags             int8
	FieldMask                  uint16
	ID                         uint32
	BlkHardLimit, BlkSoftLimit uint64
	InoHardLimit, InoSoftLimit uint64
	BCount, ICount             uint64
	ITimer, BTimer             int32
	IWarns, BWarns             uint16
	_                          [4]int8
	RtbHardLimit, RtbSoftLimit uint64
	RtbCount                   uint64
	RtbTimer                   int32
	RtbWarns                   uint16
	_                          int16
	_                          [8]byte
}

// quotaSize parses the "size" option, 0 when it is not set.
func quotaSize(o driver.Options) (uint64, error) { return driver.SizeOption(o) }

// checkQuota refuses a size option the backing filesystem cannot enforce.
func checkQuota(home string, size uint64) error {
	if size == 0 {
		return nil
	}
	if err := projectQuotaEnforced(home); err != nil {
		return fmt.Errorf("%w: overlay size option needs project quotas on the backing filesystem of %s (XFS mounted with prjquota): %v", driver.ErrUnsupported, home, err)
	}
	return nil
}

// quotactl runs one XFS quota command for project id on the filesystem
// holding path: quotactl_fd(2) where the kernel has it (5.14+), else
// quotactl(2) on a device node for the filesystem made in Home.
func quotactl(path string, cmd int, id uint32, addr unsafe.Pointer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	qcmd := uintptr(cmd<<8 | prjQuota)
	_, _, errno := unix.Syscall6(unix.SYS_QUOTACTL_FD, f.Fd(), qcmd, uintptr(id), uintptr(addr), 0, 0)
	if errno != unix.ENOSYS {
		if errno != 0 {
			return errno
		}
		return nil
	}
	dev, err := blockDevNode(path)
	if err != nil {
		return err
	}
	p, err := unix.BytePtrFromString(dev)
	if err != nil {
		return err
	}
	_, _, errno = unix.Syscall6(unix.SYS_QUOTACTL, qcmd, uintptr(unsafe.Pointer(p)), uintptr(id), uintptr(addr), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// blockDevNode makes (once) a block device node for the filesystem of
// dir, so that quotactl works where /dev has no node for it.
func blockDevNode(dir string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return "", err
	}
	node := filepath.Join(dir, ".backing-dev")
	var ns unix.Stat_t
	if unix.Stat(node, &ns) == nil && ns.Rdev == st.Dev {
		return node, nil
	}
	_ = os.Remove(node)
	if err := unix.Mknod(node, unix.S_IFBLK|0o600, int(st.Dev)); err != nil {
		return "", fmt.Errorf("making a device node for quotactl: %w", err)
	}
	return node, nil
}

// projectQuotaEnforced reports nil when the filesystem of dir enforces
// project quotas.
func projectQuotaEnforced(dir string) error {
	var stat [128]byte // struct fs_quota_stat; qs_flags is at offset 2
	if err := quotactl(dir, qXGetQStat, 0, unsafe.Pointer(&stat[0])); err != nil {
		return err
	}
	if flags := uint16(stat[2]) | uint16(stat[3])<<8; flags&fsQuotaPdqEnfd == 0 {
		return errors.New("project quotas are not enforced (mount option prjquota)")
	}
	return nil
}

// setProjectID gives dir project id and the inherit flag.
func setProjectID(dir string, id uint32) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	var x fsxattr
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fsIocFsGetXattr, uintptr(unsafe.Pointer(&x))); errno != 0 {
		return fmt.Errorf("reading project of %s: %w", dir, errno)
	}
	x.ProjID = id
	x.XFlags |= fsXflagProjInherit
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fsIocFsSetXattr, uintptr(unsafe.Pointer(&x))); errno != 0 {
		return fmt.Errorf("setting project of %s: %w", dir, errno)
	}
	return nil
}

// setProjectLimit sets project id's hard (and soft) block limit; 0
// removes the limit.
func setProjectLimit(dir string, id uint32, bytes uint64) error {
	q := diskQuota{Version: 1, Flags: fsProjQuota, FieldMask: fsDqBSoft | fsDqBHard, ID: id}
	q.BlkHardLimit = (bytes + 511) / 512
	q.BlkSoftLimit = q.BlkHardLimit
	if err := quotactl(dir, qXSetQLim, id, unsafe.Pointer(&q)); err != nil {
		return fmt.Errorf("setting the limit of project %d: %w", id, err)
	}
	return nil
}

// projectUsage returns the bytes charged to project id and its limit.
func projectUsage(dir string, id uint32) (used, limit uint64, err error) {
	var q diskQuota
	if err := quotactl(dir, qXGetQuota, id, unsafe.Pointer(&q)); err != nil {
		return 0, 0, fmt.Errorf("reading the quota of project %d: %w", id, err)
	}
	return q.BCount * 512, q.BlkHardLimit * 512, nil
}

// nextProjectID takes the next project ID from the counter in home.
func nextProjectID(home string) (uint32, error) {
	f, err := os.OpenFile(filepath.Join(home, projectIDCounter), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return 0, err
	}
	var b [16]byte
	n, _ := f.ReadAt(b[:], 0)
	id := uint64(firstProjectID)
	if v, err := strconv.ParseUint(strings.TrimSpace(string(b[:n])), 10, 32); err == nil && v >= firstProjectID {
		id = v
	}
	if err := f.Truncate(0); err != nil {
		return 0, err
	}
	if _, err := f.WriteAt([]byte(strconv.FormatUint(id+1, 10)), 0); err != nil {
		return 0, err
	}
	return uint32(id), f.Sync()
}

// snapshotQuota is what a snapshot's quota file says: the limit, and the
// project once one was given.
type snapshotQuota struct {
	size    uint64
	project uint32
}

func (d *Driver) readQuota(id string) (snapshotQuota, bool) {
	b, err := os.ReadFile(filepath.Join(d.layout.Dir(id), quotaFile))
	if err != nil {
		return snapshotQuota{}, false
	}
	var q snapshotQuota
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return q, false
	}
	q.size, _ = strconv.ParseUint(f[0], 10, 64)
	if len(f) > 1 {
		p, _ := strconv.ParseUint(f[1], 10, 32)
		q.project = uint32(p)
	}
	return q, q.size > 0
}

func (d *Driver) writeQuota(id string, q snapshotQuota) error {
	s := strconv.FormatUint(q.size, 10)
	if q.project != 0 {
		s += " " + strconv.FormatUint(uint64(q.project), 10)
	}
	return digestio.WriteFileAtomic(filepath.Join(d.layout.Dir(id), quotaFile), []byte(s), 0o600)
}

// recordQuota marks a new snapshot for the configured limit (Create hook).
func (d *Driver) recordQuota(id string) error {
	if d.quotaSize == 0 {
		return nil
	}
	return d.writeQuota(id, snapshotQuota{size: d.quotaSize})
}

// applyQuota puts a marked snapshot under its project and limit before a
// writable mount (Mount hook). It is idempotent.
func (d *Driver) applyQuota(id string) error {
	q, ok := d.readQuota(id)
	if !ok {
		return nil
	}
	if q.project == 0 {
		p, err := nextProjectID(d.layout.Home)
		if err != nil {
			return fmt.Errorf("allocating a project ID for %s: %w", id, err)
		}
		q.project = p
	}
	for _, dir := range []string{d.layout.Dir(id), d.layout.ContentDir(id), filepath.Join(d.layout.Dir(id), "work")} {
		if err := setProjectID(dir, q.project); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("limiting the size of %s: %w", id, err)
		}
	}
	if err := setProjectLimit(d.layout.Home, q.project, q.size); err != nil {
		return fmt.Errorf("limiting the size of %s: %w", id, err)
	}
	return d.writeQuota(id, q)
}

// renewQuota, after a promotion, lifts the limit of the project the
// upper directory took into the layer and leaves the container to get a
// new project at its next writable mount (Promote hook).
func (d *Driver) renewQuota(id string) error {
	q, ok := d.readQuota(id)
	if !ok || q.project == 0 {
		return nil
	}
	if err := setProjectLimit(d.layout.Home, q.project, 0); err != nil {
		return err
	}
	return d.writeQuota(id, snapshotQuota{size: q.size})
}

// dropQuota lifts the limit of a snapshot about to be removed (Remove
// hook); failure only leaves an unused limit behind.
func (d *Driver) dropQuota(id string) {
	if q, ok := d.readQuota(id); ok && q.project != 0 {
		_ = setProjectLimit(d.layout.Home, q.project, 0)
	}
}

// quotaStatus describes quota support for `kiln info` (Status hook).
func (d *Driver) quotaStatus() [][2]string {
	supported := projectQuotaEnforced(d.layout.Home) == nil
	st := [][2]string{{"Supports project quota", strconv.FormatBool(supported)}}
	if d.quotaSize > 0 {
		st = append(st, [2]string{"Container size limit", units.BytesSize(float64(d.quotaSize))})
	}
	return st
}
