package storagesetup

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Label is the filesystem label `kiln storage setup` gives what it makes,
// so that a second run knows its own work (XFS allows 12 characters).
const Label = "kiln-storage"

// Signature is what a device holds, read from its first sectors: a
// filesystem type ("xfs", "btrfs", "ext4", "swap", "LVM2_member") or a
// partition table ("gpt", "dos"), with label and UUID where it has them.
type Signature struct {
	Type, Label, UUID string
	Size              int64 // bytes the filesystem spans, where known
}

// IsKiln reports whether the signature is a filesystem of type fs made by
// `kiln storage setup`.
func (s Signature) IsKiln(fs string) bool { return s.Type == fs && s.Label == Label }

func (s Signature) String() string {
	if s.Type == "" {
		return "nothing"
	}
	out := s.Type
	if s.Label != "" {
		out += fmt.Sprintf(" labelled %q", s.Label)
	}
	return out
}

// magic is one signature's bytes at an offset.
type magic struct {
	typ         string
	off         int
	bytes       string
	uuid, label [2]int // offset and length; 0 length: none
}

var magics = []magic{
	{typ: "xfs", off: 0, bytes: "XFSB", uuid: [2]int{32, 16}, label: [2]int{108, 12}},
	{typ: "btrfs", off: 0x10040, bytes: "_BHRfS_M", uuid: [2]int{0x10020, 16}, label: [2]int{0x1012b, 256}},
	{typ: "ext4", off: 0x438, bytes: "\x53\xef", uuid: [2]int{0x468, 16}, label: [2]int{0x478, 16}},
	{typ: "swap", off: 4086, bytes: "SWAPSPACE2"},
	{typ: "LVM2_member", off: 536, bytes: "LVM2 001"},
	{typ: "gpt", off: 512, bytes: "EFI PART"},
	{typ: "dos", off: 510, bytes: "\x55\xaa"},
}

// ReadSignature reads what dev (a block device or a file) holds.
func ReadSignature(dev string) (Signature, error) {
	f, err := os.Open(dev)
	if err != nil {
		return Signature{}, err
	}
	defer f.Close()
	buf := make([]byte, 0x10000+4096)
	n, err := f.ReadAt(buf, 0)
	if err != nil && n == 0 {
		return Signature{}, fmt.Errorf("reading %s: %w", dev, err)
	}
	buf = buf[:n]
	for _, m := range magics {
		end := m.off + len(m.bytes)
		if end > len(buf) || string(buf[m.off:end]) != m.bytes {
			continue
		}
		s := Signature{Type: m.typ}
		if l := m.uuid[1]; l > 0 && m.uuid[0]+l <= len(buf) {
			s.UUID = formatUUID(buf[m.uuid[0] : m.uuid[0]+l])
		}
		if l := m.label[1]; l > 0 && m.label[0]+l <= len(buf) {
			s.Label = string(bytes.TrimRight(buf[m.label[0]:m.label[0]+l], "\x00"))
		}
		s.Size = fsSize(m.typ, buf)
		return s, nil
	}
	return Signature{}, nil
}

// fsSize reads the filesystem's size from its superblock: XFS keeps the
// block size (be32 at 4) and data blocks (be64 at 8); btrfs total_bytes
// (le64 at 0x10070).
func fsSize(typ string, sb []byte) int64 {
	switch {
	case typ == "xfs" && len(sb) >= 16:
		return int64(binary.BigEndian.Uint32(sb[4:8])) * int64(binary.BigEndian.Uint64(sb[8:16]))
	case typ == "btrfs" && len(sb) >= 0x10078:
		return int64(binary.LittleEndian.Uint64(sb[0x10070:0x10078]))
	}
	return 0
}

func formatUUID(b []byte) string {
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// hasPartitions reports whether the kernel sees partitions on block
// device dev.
func hasPartitions(dev string) bool {
	real, err := filepath.EvalSymlinks(dev)
	if err != nil {
		return false
	}
	name := filepath.Base(real)
	parts, _ := filepath.Glob(filepath.Join("/sys/class/block", name, name+"*", "partition"))
	return len(parts) > 0
}

// wipe clears every signature ReadSignature knows, as `wipefs -a` would:
// the first and last MiB of the device.
func wipe(dev string) error {
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	size, err := deviceSize(dev)
	if err != nil {
		return err
	}
	zero := make([]byte, 1<<20)
	for _, off := range []int64{0, max(size-int64(len(zero)), 0)} {
		n := min(int64(len(zero)), size-off)
		if _, err := f.WriteAt(zero[:n], off); err != nil {
			return fmt.Errorf("wiping %s: %w", dev, err)
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

// deviceSize is the size in bytes of a block device or a file.
func deviceSize(dev string) (int64, error) {
	fi, err := os.Stat(dev)
	if err != nil {
		return 0, err
	}
	if fi.Mode().IsRegular() {
		return fi.Size(), nil
	}
	f, err := os.Open(dev)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var size uint64
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&size))); errno != 0 {
		return 0, fmt.Errorf("reading the size of %s: %w", dev, errno)
	}
	return int64(size), nil
}

// fsFor is the filesystem a driver wants its store on.
func fsFor(driverName string) string {
	if driverName == "btrfs" {
		return "btrfs"
	}
	return "xfs" // overlay wants XFS with ftype=1; vfs is happy there too
}

// mkfs makes the driver's filesystem on devs, fsBytes in size (0: all).
func mkfs(ctx context.Context, fs string, devs []string, fsBytes int64) error {
	var args []string
	switch fs {
	case "xfs":
		// ftype=1 gives overlayfs d_type; crc=1 is the V5 format.
		args = []string{"-f", "-q", "-L", Label, "-m", "crc=1", "-n", "ftype=1"}
		if fsBytes > 0 {
			args = append(args, "-d", "size="+strconv.FormatInt(fsBytes, 10))
		}
	case "btrfs":
		args = []string{"-f", "-q", "-L", Label}
		if fsBytes > 0 {
			args = append(args, "-b", strconv.FormatInt(fsBytes, 10))
		}
	default:
		return fmt.Errorf("no mkfs for %s", fs)
	}
	return runTool(ctx, "mkfs."+fs, append(args, devs...)...)
}

// growFS grows the filesystem mounted at dir to fill its device.
func growFS(ctx context.Context, fs, dir string) error {
	if fs == "btrfs" {
		return runTool(ctx, "btrfs", "filesystem", "resize", "max", dir)
	}
	return runTool(ctx, "xfs_growfs", dir)
}

// run runs a tool and makes its output part of the error.
func runTool(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if errors.Is(err, exec.ErrNotFound) {
		return fmt.Errorf("%s is not installed (it comes with %s)", name, toolPackage(name))
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func toolPackage(name string) string {
	switch {
	case strings.Contains(name, "xfs"):
		return "xfsprogs"
	case strings.Contains(name, "btrfs"):
		return "btrfs-progs"
	}
	return "lvm2"
}
