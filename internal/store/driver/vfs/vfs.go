// Package vfs is the plain-directory storage driver: every snapshot is a
// full copy of its tree. It works on any filesystem and inside any
// container, at the cost of space and time.
package vfs

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/containerd/continuity/fs"

	"github.com/kiln-build/kiln/internal/archive"
	"github.com/kiln-build/kiln/internal/store/driver"
)

func init() { driver.Register("vfs", New) }

// Driver is the vfs driver.
type Driver struct {
	layout driver.Layout
}

var _ driver.Driver = (*Driver)(nil)

// New opens the vfs driver at o.Home.
func New(o driver.Options) (driver.Driver, error) {
	if err := os.MkdirAll(o.Home, 0o700); err != nil {
		return nil, fmt.Errorf("creating vfs home: %w", err)
	}
	if size, err := driver.SizeOption(o); err != nil {
		return nil, err
	} else if size > 0 {
		return nil, fmt.Errorf("%w: the vfs driver cannot limit a container's size (size=%s): use btrfs, or overlay on XFS with project quotas", driver.ErrUnsupported, o.Opts["size"])
	}
	return &Driver{layout: driver.Layout{Home: o.Home, Content: "dir"}}, nil
}

// Name implements driver.Driver.
func (d *Driver) Name() string { return "vfs" }

// Home implements driver.Driver.
func (d *Driver) Home() string { return d.layout.Home }

// Create implements driver.Driver: the new snapshot starts as a copy of
// its parent's tree.
func (d *Driver) Create(ctx context.Context, id, parent string) error {
	return d.layout.Create(id, parent, func(content string) error {
		if parent == "" {
			return nil
		}
		return copyTree(content, d.layout.ContentDir(parent))
	})
}

func copyTree(dst, src string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	if err := fs.CopyDir(dst, src, fs.WithAllowXAttrErrors()); err != nil {
		return fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	return nil
}

// ApplyDiff implements driver.Driver.
func (d *Driver) ApplyDiff(ctx context.Context, id string, r io.Reader) (int64, error) {
	if !d.layout.Exists(id) {
		return 0, fmt.Errorf("%w: %s", driver.ErrNotExist, id)
	}
	return archive.Apply(ctx, d.layout.ContentDir(id), r, archive.ApplyOptions{})
}

// Mount implements driver.Driver: the tree is already whole on disk.
func (d *Driver) Mount(ctx context.Context, id string, readOnly bool) (string, error) {
	if !d.layout.Exists(id) {
		return "", fmt.Errorf("%w: %s", driver.ErrNotExist, id)
	}
	return d.layout.ContentDir(id), nil
}

// Unmount implements driver.Driver; there is nothing to undo.
func (d *Driver) Unmount(ctx context.Context, id string) error { return nil }

// Mounted implements driver.Driver: a vfs tree is always reachable.
func (d *Driver) Mounted(id string) (bool, error) { return d.layout.Exists(id), nil }

// Diff implements driver.Driver by comparing the tree with its parent's.
func (d *Driver) Diff(ctx context.Context, id string, w io.Writer, opts driver.DiffOptions) error {
	return d.layout.TreeDiff(ctx, id, w, opts)
}

// Promote implements driver.Driver: the tree moves to the new layer and
// the container gets a copy of it.
func (d *Driver) Promote(ctx context.Context, from, to string) error {
	err := d.layout.Promote(from, to, func(toContent, fromContent string) error {
		return copyTree(fromContent, toContent)
	})
	if err != nil {
		return fmt.Errorf("promoting snapshot %s to %s: %w", from, to, err)
	}
	return nil
}

// Content implements driver.Driver.
func (d *Driver) Content(id string) (string, error) { return d.layout.ExistingContent(id) }

// Parent implements driver.Driver.
func (d *Driver) Parent(id string) (string, error) { return d.layout.Parent(id) }

// Exists implements driver.Driver.
func (d *Driver) Exists(id string) bool { return d.layout.Exists(id) }

// Remove implements driver.Driver.
func (d *Driver) Remove(ctx context.Context, id string) error { return d.layout.Remove(id) }

// Size implements driver.Driver.
func (d *Driver) Size(ctx context.Context, id string) (int64, error) {
	return driver.DirSize(d.layout.ContentDir(id))
}

// Status implements driver.Driver.
func (d *Driver) Status() [][2]string { return nil }
