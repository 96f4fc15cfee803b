// Package driver defines the snapshot lifecycle every storage driver
// implements — create, apply a layer, mount, diff, promote a container's
// writes into a layer, remove — and the errors they share.
//
// A driver keeps its own on-disk state under its home directory and knows
// each snapshot's parent; which snapshots exist as image layers or as
// containers is the store's business, recorded in its database.
package driver

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"
)

// Sentinel errors drivers wrap.
var (
	// ErrNotExist: the snapshot is not there.
	ErrNotExist = errors.New("snapshot does not exist")
	// ErrExist: a snapshot with that id is already there.
	ErrExist = errors.New("snapshot already exists")
	// ErrUnsupported: the driver cannot run on this host or filesystem.
	ErrUnsupported = errors.New("storage driver not supported here")
	// ErrTooDeep: a snapshot has more layers than one mount can stack.
	ErrTooDeep = errors.New("too many layers for one mount")
)

// DiffOptions shape a layer tar.
type DiffOptions struct {
	// ModTimeUpperBound clamps entry times, for reproducible layers.
	ModTimeUpperBound *time.Time
	// Live: the snapshot may change while it is read; entries that
	// vanish meanwhile are left out (see archive.DiffOptions).
	Live bool
}

// Driver is a snapshot store. Ids are chosen by the caller: short,
// [a-z0-9] only. Methods are safe to call from several processes at once
// for different ids; the store serializes work on one id.
type Driver interface {
	// Name is the driver's name as storage.conf spells it.
	Name() string
	// Home is the directory that holds the driver's state.
	Home() string
	// Create makes an empty writable snapshot id on top of parent ("" for
	// none). A half-made snapshot left by a crash is replaced.
	Create(ctx context.Context, id, parent string) error
	// ApplyDiff applies a layer tar to the unmounted snapshot id and
	// returns the bytes of content written.
	ApplyDiff(ctx context.Context, id string, r io.Reader) (int64, error)
	// Mount makes the snapshot's full tree visible and returns its path.
	// It is not reference counted: the store counts.
	Mount(ctx context.Context, id string, readOnly bool) (string, error)
	// Unmount undoes Mount; unmounting what is not mounted is no error.
	Unmount(ctx context.Context, id string) error
	// Mounted reports whether the snapshot is mounted now.
	Mounted(id string) (bool, error)
	// Diff writes the layer tar of snapshot id against its parent.
	Diff(ctx context.Context, id string, w io.Writer, opts DiffOptions) error
	// Promote turns the writes of snapshot from into a new snapshot to
	// (same parent) without copying where the driver can, and leaves from
	// as an empty writable snapshot on top of to. from must be unmounted.
	// It is idempotent: after a crash, calling it again finishes the job.
	Promote(ctx context.Context, from, to string) error
	// Parent returns the parent of id ("" for none).
	Parent(id string) (string, error)
	// Exists reports whether snapshot id is complete and present.
	Exists(id string) bool
	// Remove deletes the snapshot; removing what is absent is no error.
	Remove(ctx context.Context, id string) error
	// Content is the directory holding the snapshot's own files under the
	// names its layer tar gives them: an overlay upper directory, or the
	// whole tree of a vfs or btrfs snapshot. It is for reading only (a
	// layer tar is rebuilt from it).
	Content(id string) (string, error)
	// Size is the disk usage of the snapshot's own content in bytes.
	Size(ctx context.Context, id string) (int64, error)
	// Status describes the driver for `kiln info`, as ordered key/value pairs.
	Status() [][2]string
}

// ParentAtMount is implemented by drivers whose Create needs none of
// the parent's files (overlay): the snapshots below must exist only
// once the snapshot is mounted. Others copy or snapshot the parent in
// Create.
type ParentAtMount interface {
	ParentAtMount()
}

// Options configure a driver when it is opened.
type Options struct {
	// Home is the driver's state directory, e.g. /var/lib/kiln/overlay.
	Home string
	// Opts are the storage.conf and --storage-opt options for this driver.
	Opts map[string]string
	// Logger receives notes (device nodes a rootless store leaves out of
	// the layers it applies); nil discards them.
	Logger *slog.Logger
}

// New opens a driver by name; drivers register themselves with Register.
func New(name string, o Options) (Driver, error) {
	f, ok := registry[name]
	if !ok {
		return nil, &UnknownError{Name: name}
	}
	return f(o)
}

var registry = map[string]func(Options) (Driver, error){}

// Register makes a driver constructor known to New under name.
func Register(name string, f func(Options) (Driver, error)) { registry[name] = f }

// UnknownError names a driver kiln does not have.
type UnknownError struct{ Name string }

func (e *UnknownError) Error() string {
	if e.Name == "devicemapper" {
		return `storage driver "devicemapper" was removed upstream (containers/storage and Docker dropped it: loop-backed thin pools corrupted under load and direct-lvm needed a dedicated device per host); use "overlay" on XFS or ext4, or "btrfs"`
	}
	return "unknown storage driver " + `"` + e.Name + `"` + ": use overlay, vfs or btrfs"
}

// Known reports whether a driver of that name exists, with the same error
// New would give.
func Known(name string) error {
	if _, ok := registry[name]; !ok {
		return &UnknownError{Name: name}
	}
	return nil
}
