package storagesetup

import (
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/store/driver"
)

// Backing describes the filesystem a store sits on.
type Backing struct {
	FSType       string // xfs, btrfs, extfs, tmpfs, ...
	Device       string // what is mounted (a loop device shows its file too)
	MountPoint   string
	MountOptions string
	DType        bool // directory entries carry file types (overlay needs it)
	ProjectQuota bool // mounted with project quotas (XFS prjquota)
}

// ProbeBacking looks at the filesystem holding dir.
func ProbeBacking(dir string) (Backing, error) {
	dir = existingAncestor(dir)
	var b Backing
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return b, fmt.Errorf("probing the filesystem of %s: %w", dir, err)
	}
	b.FSType = driver.FSTypeName(st.Type)
	if m, err := MountOf(dir); err == nil {
		b.Device, b.MountPoint, b.MountOptions = m.Source, m.Target, m.Options
		if f := loopFile(m.Source); f != "" {
			b.Device += " (file " + f + ")"
		}
		b.ProjectQuota = hasOption(m.Options, "prjquota", "pquota", "prjquota", "pqnoenforce")
	}
	b.DType, _ = SupportsDType(dir)
	return b, nil
}

func hasOption(opts string, names ...string) bool {
	for _, o := range splitComma(opts) {
		for _, n := range names {
			if o == n {
				return true
			}
		}
	}
	return false
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

// SupportsDType reports whether the filesystem of dir fills in d_type:
// it makes a file in a temp dir and reads the entry back with getdents.
func SupportsDType(dir string) (bool, error) {
	tmp, err := os.MkdirTemp(dir, ".dtype-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(tmp, "f"), nil, 0o600); err != nil {
		return false, err
	}
	fd, err := unix.Open(tmp, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	buf := make([]byte, 4096)
	n, err := unix.Getdents(fd, buf)
	if err != nil {
		return false, err
	}
	// linux_dirent64: ino u64, off s64, reclen u16, type u8, name...
	for off := 0; off+19 < n; {
		reclen := int(buf[off+16]) | int(buf[off+17])<<8
		typ := buf[off+18]
		name := unix.ByteSliceToString(buf[off+19 : off+reclen])
		if name == "f" {
			return typ != unix.DT_UNKNOWN, nil
		}
		if reclen == 0 {
			break
		}
		off += reclen
	}
	return false, fmt.Errorf("reading the entries of %s: file not found", tmp)
}

// Space is the room on the filesystem holding a store.
type Space struct {
	DataTotal, DataUsed, DataAvailable int64
	// Metadata block groups, where the filesystem keeps them apart from
	// data (btrfs); zero elsewhere, where metadata shares the data space.
	MetaTotal, MetaUsed     int64
	InodesTotal, InodesFree uint64 // zero where inodes are not fixed (btrfs)
}

// MeasureSpace measures the filesystem holding dir.
func MeasureSpace(dir string) (Space, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(existingAncestor(dir), &st); err != nil {
		return Space{}, fmt.Errorf("measuring the space of %s: %w", dir, err)
	}
	sp := Space{
		DataTotal:     int64(st.Blocks) * st.Bsize,
		DataUsed:      int64(st.Blocks-st.Bfree) * st.Bsize,
		DataAvailable: int64(st.Bavail) * st.Bsize,
		InodesTotal:   st.Files,
		InodesFree:    st.Ffree,
	}
	if st.Type == unix.BTRFS_SUPER_MAGIC {
		sp.InodesTotal, sp.InodesFree = 0, 0
		sp.MetaTotal, sp.MetaUsed, _ = btrfsMetadata(existingAncestor(dir))
	}
	return sp, nil
}

// btrfsMetadata reads the metadata block groups' size and use with
// BTRFS_IOC_SPACE_INFO.
func btrfsMetadata(dir string) (total, used int64, err error) {
	const (
		ioctlSpaceInfo = 0xc0109414 // _IOWR(0x94, 20, struct btrfs_ioctl_space_args)
		groupMetadata  = 1 << 2
		slots          = 16
	)
	var args struct {
		SpaceSlots, TotalSpaces uint64
		Spaces                  [slots]struct{ Flags, TotalBytes, UsedBytes uint64 }
	}
	args.SpaceSlots = slots
	f, err := os.Open(dir)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), ioctlSpaceInfo, uintptr(unsafe.Pointer(&args))); errno != 0 {
		return 0, 0, errno
	}
	for i := 0; i < int(min(args.TotalSpaces, slots)); i++ {
		if s := args.Spaces[i]; s.Flags&groupMetadata != 0 {
			total += int64(s.TotalBytes)
			used += int64(s.UsedBytes)
		}
	}
	return total, used, nil
}
