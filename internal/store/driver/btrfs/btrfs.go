// Package btrfs is the btrfs storage driver: every snapshot's content is a
// btrfs subvolume, a child is a writable snapshot of its parent's
// subvolume, and a container's writes become a layer by renaming its
// subvolume and snapshotting it for the container, never by copying.
// It talks to the kernel with ioctls; btrfs-progs is not needed.
package btrfs

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/archive"
	"github.com/kiln-build/kiln/internal/store/driver"
)

func init() { driver.Register("btrfs", New) }

// Driver is the btrfs driver.
type Driver struct {
	layout    driver.Layout
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
	d := &Driver{layout: driver.Layout{Home: o.Home, Content: "fs"}}
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
func (d *Driver) Home() string { return d.layout.Home }

func (d *Driver) tmpContent(id string) string {
	return filepath.Join(d.layout.Home, ".tmp-"+id, d.layout.Content)
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
	return d.layout.Create(id, parent, func(content string) error {
		if err := d.recordQuota(filepath.Dir(content)); err != nil {
			return err
		}
		if parent == "" {
			return subvolCreate(content)
		}
		return snapshot(d.layout.ContentDir(parent), content)
	})
}

// ApplyDiff implements driver.Driver.
func (d *Driver) ApplyDiff(ctx context.Context, id string, r io.Reader) (int64, error) {
	if !d.layout.Exists(id) {
		return 0, fmt.Errorf("%w: %s", driver.ErrNotExist, id)
	}
	return archive.Apply(ctx, d.layout.ContentDir(id), r, archive.ApplyOptions{})
}

// Mount implements driver.Driver: the subvolume is the whole tree. A
// writable mount puts a snapshot made with a size limit under it.
func (d *Driver) Mount(ctx context.Context, id string, readOnly bool) (string, error) {
	if !d.layout.Exists(id) {
		return "", fmt.Errorf("%w: %s", driver.ErrNotExist, id)
	}
	if !readOnly {
		if err := d.applyQuota(id); err != nil {
			return "", err
		}
	}
	return d.layout.ContentDir(id), nil
}

// Unmount implements driver.Driver; there is nothing to undo.
func (d *Driver) Unmount(ctx context.Context, id string) error { return nil }

// Mounted implements driver.Driver: a subvolume is always reachable.
func (d *Driver) Mounted(id string) (bool, error) { return d.layout.Exists(id), nil }

// Diff implements driver.Driver by comparing the tree with its parent's.
func (d *Driver) Diff(ctx context.Context, id string, w io.Writer, opts driver.DiffOptions) error {
	return d.layout.TreeDiff(ctx, id, w, opts)
}

// Promote implements driver.Driver: the container's subvolume becomes the
// layer and the container continues on a snapshot of it. A size limit
// moves with the container: lifted from the layer, set on the new
// subvolume.
func (d *Driver) Promote(ctx context.Context, from, to string) error {
	err := d.layout.Promote(from, to, func(toContent, fromContent string) error {
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
func (d *Driver) Content(id string) (string, error) { return d.layout.ExistingContent(id) }

// Parent implements driver.Driver.
func (d *Driver) Parent(id string) (string, error) { return d.layout.Parent(id) }

// Exists implements driver.Driver.
func (d *Driver) Exists(id string) bool { return d.layout.Exists(id) }

// Remove implements driver.Driver: subvolumes are deleted with the
// kernel's snapshot-destroy call, the rest of the directory after.
func (d *Driver) Remove(ctx context.Context, id string) error {
	if err := driver.ValidID(id); err != nil {
		return err
	}
	sid := d.dropQuota(id)
	for _, sub := range []string{
		d.layout.ContentDir(id),
		filepath.Join(d.layout.Dir(id), ".tmp-"+d.layout.Content),
		d.tmpContent(id),
		filepath.Join(d.layout.Home, ".rm-"+id, d.layout.Content),
	} {
		if err := destroy(sub); err != nil {
			return fmt.Errorf("removing snapshot %s: %w", id, err)
		}
	}
	d.forgetQgroup(sid)
	return d.layout.Remove(id)
}

// Size implements driver.Driver. It counts the whole tree, extents shared
// with the parent snapshot included.
func (d *Driver) Size(ctx context.Context, id string) (int64, error) {
	return driver.DirSize(d.layout.ContentDir(id))
}

// Status implements driver.Driver.
func (d *Driver) Status() [][2]string {
	return append([][2]string{
		{"Backing Filesystem", "btrfs"},
		{"Snapshots", "subvolume snapshots (ioctl)"},
	}, d.quotaStatus()...)
}
