package btrfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The btrfs ioctls kiln uses, from linux/btrfs.h. Each takes a
// btrfs_ioctl_vol_args: a file descriptor and a NUL-terminated name.
const (
	ioctlSnapCreate   = 0x50009401 // _IOW(0x94, 1, struct btrfs_ioctl_vol_args)
	ioctlSubvolCreate = 0x5000940e // _IOW(0x94, 14, ...)
	ioctlSnapDestroy  = 0x5000940f // _IOW(0x94, 15, ...)

	// firstFreeObjectID is the inode number of every subvolume's root.
	firstFreeObjectID = 256
)

type volArgs struct {
	fd   int64
	name [4088]byte
}

func ioctlOnParent(path string, req uintptr, srcFd int64) error {
	parent, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer parent.Close()
	var args volArgs
	base := filepath.Base(path)
	if len(base) >= len(args.name) {
		return fmt.Errorf("subvolume name %q is too long", base)
	}
	args.fd = srcFd
	copy(args.name[:], base)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, parent.Fd(), req, uintptr(unsafe.Pointer(&args)))
	if errno != 0 {
		return errno
	}
	return nil
}

// subvolCreate makes an empty subvolume at path.
func subvolCreate(path string) error {
	if err := ioctlOnParent(path, ioctlSubvolCreate, 0); err != nil {
		return fmt.Errorf("creating subvolume %s: %w", path, err)
	}
	return nil
}

// snapshot makes a writable snapshot of the subvolume src at path.
func snapshot(src, path string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := ioctlOnParent(path, ioctlSnapCreate, int64(f.Fd())); err != nil {
		return fmt.Errorf("snapshotting %s to %s: %w", src, path, err)
	}
	return nil
}

// isSubvolume reports whether path is the root of a subvolume.
func isSubvolume(path string) bool {
	var st unix.Stat_t
	return unix.Lstat(path, &st) == nil && st.Ino == firstFreeObjectID && st.Mode&unix.S_IFMT == unix.S_IFDIR
}

// destroy deletes the subvolume at path and any subvolumes nested in it
// (a container may have made some); an absent path is no error.
func destroy(path string) error {
	if !isSubvolume(path) {
		if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return os.RemoveAll(path)
	}
	if err := destroyNested(path); err != nil {
		return err
	}
	if err := ioctlOnParent(path, ioctlSnapDestroy, 0); err != nil {
		return fmt.Errorf("deleting subvolume %s: %w", path, err)
	}
	return nil
}

// destroyNested deletes subvolumes found below path, deepest first.
// Their roots are directories with inode 256 on another st_dev.
func destroyNested(path string) error {
	var top unix.Stat_t
	if err := unix.Lstat(path, &top); err != nil {
		return err
	}
	var nested []string
	err := filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() || p == path {
			return err
		}
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil || st.Dev == top.Dev {
			return nil
		}
		if st.Ino == firstFreeObjectID {
			nested = append(nested, p)
		}
		return filepath.SkipDir // a subvolume, or a mount: not ours to walk
	})
	if err != nil {
		return err
	}
	for _, n := range nested {
		if err := destroy(n); err != nil {
			return err
		}
	}
	return nil
}
