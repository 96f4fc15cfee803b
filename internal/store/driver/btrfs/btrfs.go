// Package btrfs is the btrfs storage driver: every snapshot's content is a
// btrfs subvolume, a child is a writable snapshot of its parent's
// subvolume, and a container's writes become a layer by renaming its
// subvolume and snapshotting it for the container, never by copying.
// It talks to the kernel with ioctls; btrfs-progs is not needed.
package btrfs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/store/driver"
)

func init() { driver.Register("btrfs", New) }

// Driver is the btrfs driver. Its Layout gives it Exists, Parent,
// ApplyDiff, Diff (comparing trees), Mounted, Unmount and Size (which
// counts extents shared with the parent snapshot too).
type Driver struct {
	driver.Layout
	quotaSize uint64 // per-container limit in bytes (quota.go); 0 for none
}

var _ driver.Driver = (*Driver)(nil)

// New opens the btrfs driver at o.Home, which must be on btrfs.
func New(o driver.Options) (driver.Driver, error) {
	if err := os.MkdirAll(o.Home, 0o700); err != nil {
		return nil, fmt.Errorf("creating btrfs home: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(o.Home, &st); err != nil {
		return nil, fmt.Errorf("checking the filesystem of %s: %w", o.Home, err)
	}
	if st.Type != unix.BTRFS_SUPER_MAGIC {
		return nil, fmt.Errorf("%w: %s is not on btrfs (put the store on a btrfs filesystem, e.g. with `kiln storage setup` and STORAGE_DRIVER=btrfs, or use overlay)", driver.ErrUnsupported, o.Home)
	}
	d := &Driver{Layout: driver.Layout{Home: o.Home, Content: "fs", Logger: o.Logger}}
	var err error
	if d.quotaSize, err = driver.SizeOption(o); err != nil {
		return nil, err
	}
	if err := checkQuota(o.Home, d.quotaSize); err != nil {
		return nil, err
	}
	return d, nil
}

// Name implements driver.Driver.
func (d *Driver) Name() string { return "btrfs" }

// Home implements driver.Driver.
func (d *Driver) Home() string { return d.Layout.Home }

func (d *Driver) tmpContent(id string) string {
	return filepath.Join(d.Layout.Home, ".tmp-"+id, d.Layout.Content)
}

// Create implements driver.Driver: a new empty subvolume, or a writable
// snapshot of the parent's.
func (d *Driver) Create(ctx context.Context, id, parent string) error {
	if err := driver.ValidID(id); err != nil {
		return err
	}
	if err := destroy(d.tmpContent(id)); err != nil {
		return err
	}
	return d.Layout.Create(id, parent, func(content string) error {
		if err := d.recordQuota(filepath.Dir(content)); err != nil {
			return err
		}
		if parent == "" {
			return subvolCreate(content)
		}
		return snapshot(d.ContentDir(parent), content)
	})
}

// Mount implements driver.Driver: the subvolume is the whole tree. A
// writable mount puts a snapshot made with a size limit under it.
func (d *Driver) Mount(ctx context.Context, id string, readOnly bool) (string, error) {
	if !d.Exists(id) {
		return "", fmt.Errorf("%w: %s", driver.ErrNotExist, id)
	}
	if !readOnly {
		if err := d.applyQuota(id); err != nil {
			return "", err
		}
	}
	return d.ContentDir(id), nil
}

// Promote implements driver.Driver: the container's subvolume becomes the
// layer and the container continues on a snapshot of it. A size limit
// moves with the container: lifted from the layer, set on the new
// subvolume.
func (d *Driver) Promote(ctx context.Context, from, to string) error {
	err := d.Layout.Promote(from, to, func(toContent, fromContent string) error {
		if err := destroy(fromContent); err != nil {
			return err
		}
		return snapshot(toContent, fromContent)
	})
	if err != nil {
		return fmt.Errorf("promoting snapshot %s to %s: %w", from, to, err)
	}
	if err := d.releaseQuota(from, to); err != nil {
		return err
	}
	return d.applyQuota(from)
}

// Content implements driver.Driver.
func (d *Driver) Content(id string) (string, error) { return d.ExistingContent(id) }

// Remove implements driver.Driver: subvolumes are deleted with the
// kernel's snapshot-destroy call, the rest of the directory after.
func (d *Driver) Remove(ctx context.Context, id string) error {
	if err := driver.ValidID(id); err != nil {
		return err
	}
	sid := d.dropQuota(id)
	for _, sub := range []string{
		d.ContentDir(id),
		filepath.Join(d.Dir(id), ".tmp-"+d.Layout.Content),
		d.tmpContent(id),
		filepath.Join(d.Layout.Home, ".rm-"+id, d.Layout.Content),
	} {
		if err := destroy(sub); err != nil {
			return fmt.Errorf("removing snapshot %s: %w", id, err)
		}
	}
	d.forgetQgroup(sid)
	return d.Layout.Remove(id)
}

// Status implements driver.Driver.
func (d *Driver) Status() [][2]string {
	return append([][2]string{
		{"Backing Filesystem", "btrfs"},
		{"Snapshots", "subvolume snapshots (ioctl)"},
	}, d.quotaStatus()...)
}
