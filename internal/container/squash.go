package container

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	cfs "github.com/containerd/continuity/fs"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store"
)

// squash commits the container's whole root filesystem as a single layer
// on nothing, through a temporary scratch container that receives a copy
// of it. The container itself goes on unchanged.
func (c *Container) squash(ctx context.Context, o CommitOptions) (store.Image, error) {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp, err := New(ctx, c.st, NewOptions{Image: "scratch", Name: c.rec.Name + "-squash-" + hex.EncodeToString(rnd[:]), Temporary: true})
	if err != nil {
		return store.Image{}, err
	}
	defer tmp.Remove(context.WithoutCancel(ctx))
	err = c.withMount(ctx, func(src string) error {
		return tmp.withMount(ctx, func(dst string) error {
			if err := cfs.CopyDir(dst, src); err != nil {
				return fmt.Errorf("squashing container %s: %w", c.rec.Name, err)
			}
			return nil
		})
	})
	if err != nil {
		return store.Image{}, err
	}
	cfg := c.State.Config.Clone()
	cfg.RootFS = image.RootFS{Type: "layers"}
	cfg.History = nil
	tmp.State.Config = cfg
	tmp.State.ImageAnnotations = c.State.ImageAnnotations
	tmp.State.HistoryComment = c.State.HistoryComment
	tmp.State.ImageCreatedBy = c.State.ImageCreatedBy
	o.Squash = false
	img, err := tmp.Commit(ctx, o)
	if err != nil {
		return store.Image{}, err
	}
	return img, nil
}
