package images

import (
	"context"
	"fmt"
	"io"
	"os"

	cfs "github.com/containerd/continuity/fs"

	"github.com/kiln-build/kiln/internal/archive"
	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/store"
)

// ExportDir copies the root filesystem of the stored image id into dir
// (made if missing), as `build --output type=local` does.
func ExportDir(ctx context.Context, st *store.Store, id, dir string) error {
	return withRootfs(ctx, st, id, func(root string) error {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		return cfs.CopyDir(dir, root)
	})
}

// ExportTar writes the root filesystem of the stored image id to w as
// one tar stream, as `build --output type=tar` does.
func ExportTar(ctx context.Context, st *store.Store, id string, w io.Writer) error {
	return withRootfs(ctx, st, id, func(root string) error {
		return archive.WriteTreeDiff(ctx, w, "", root, archive.DiffOptions{})
	})
}

// withRootfs mounts the image in a temporary container (removed after,
// and by the next kiln process should this one die) and calls f with its
// root.
func withRootfs(ctx context.Context, st *store.Store, id string, f func(root string) error) error {
	name := fmt.Sprintf("kiln-output-%.12s%d", id, os.Getpid())
	c, err := container.New(ctx, st, container.NewOptions{Image: id, Name: name, Temporary: true})
	if err != nil {
		return err
	}
	defer c.Remove(context.WithoutCancel(ctx))
	root, err := c.Mount(ctx)
	if err != nil {
		return err
	}
	return f(root)
}
