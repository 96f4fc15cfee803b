package store

import (
	"context"
	"fmt"
	"io"

	"github.com/kiln-build/kiln/internal/store/driver"
)

// readOnlySnapshots wraps d for Options.SnapshotsReadOnly: reading
// passes through, every change fails before it starts. The wrapper keeps
// d's driver.ParentAtMount.
func readOnlySnapshots(d driver.Driver) driver.Driver {
	if _, ok := d.(driver.ParentAtMount); ok {
		return lazyReadOnly{readOnly{d}}
	}
	return readOnly{d}
}

type readOnly struct{ driver.Driver }

type lazyReadOnly struct{ readOnly }

func (lazyReadOnly) ParentAtMount() {}

func refused(what, id string) error {
	return fmt.Errorf("%w: %s snapshot %s", ErrSnapshotsReadOnly, what, id)
}

func (readOnly) Create(_ context.Context, id, _ string) error { return refused("creating", id) }

func (readOnly) ApplyDiff(_ context.Context, id string, _ io.Reader) (int64, error) {
	return 0, refused("applying a layer to", id)
}

func (readOnly) Mount(_ context.Context, id string, _ bool) (string, error) {
	return "", refused("mounting", id)
}

func (readOnly) Unmount(_ context.Context, id string) error { return refused("unmounting", id) }

func (readOnly) Promote(_ context.Context, from, _ string) error { return refused("promoting", from) }

func (readOnly) Remove(_ context.Context, id string) error { return refused("removing", id) }
