// Package vfs is the plain-directory storage driver: every snapshot is a
// full copy of its tree. It works on any filesystem and inside any
// container, at the cost of space and time.
package vfs

import (
	"context"
	"fmt"
	"os"

	"github.com/containerd/continuity/fs"

	"github.com/kiln-build/kiln/internal/store/driver"
)

func init() { driver.Register("vfs", New) }

// Driver is the vfs driver. Its Layout gives it Exists, Parent,
// ApplyDiff, Diff (comparing trees), Mounted, Unmount and Size.
type Driver struct {
	driver.Layout
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
	return &Driver{Layout: driver.Layout{Home: o.Home, Content: "dir", Logger: o.Logger}}, nil
}

// Name implements driver.Driver.
func (d *Driver) Name() string { return "vfs" }

// Home implements driver.Driver.
func (d *Driver) Home() string { return d.Layout.Home }

// Create implements driver.Driver: the new snapshot starts as a copy of
// its parent's tree.
func (d *Driver) Create(ctx context.Context, id, parent string) error {
	return d.Layout.Create(id, parent, func(content string) error {
		if parent == "" {
			return nil
		}
		return copyTree(content, d.ContentDir(parent))
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

// Mount implements driver.Driver: the tree is already whole on disk.
func (d *Driver) Mount(ctx context.Context, id string, readOnly bool) (string, error) {
	if !d.Exists(id) {
		return "", fmt.Errorf("%w: %s", driver.ErrNotExist, id)
	}
	return d.ContentDir(id), nil
}

// Promote implements driver.Driver: the tree moves to the new layer and
// the container gets a copy of it.
func (d *Driver) Promote(ctx context.Context, from, to string) error {
	err := d.Layout.Promote(from, to, func(toContent, fromContent string) error {
		return copyTree(fromContent, toContent)
	})
	if err != nil {
		return fmt.Errorf("promoting snapshot %s to %s: %w", from, to, err)
	}
	return nil
}

// Content implements driver.Driver.
func (d *Driver) Content(id string) (string, error) { return d.ExistingContent(id) }

// Remove implements driver.Driver.
func (d *Driver) Remove(ctx context.Context, id string) error { return d.Layout.Remove(id) }

// Status implements driver.Driver.
func (d *Driver) Status() [][2]string { return nil }
