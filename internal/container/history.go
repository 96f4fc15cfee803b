package container

import (
	"context"
	"time"

	"github.com/kiln-build/kiln/internal/image"
)

// AddHistory records an empty-layer history entry for something done to
// the container (a run, a copy, a config change given --add-history): the
// next commit writes it before the entry of its own layer, as Buildah's
// prepended history does.
func (c *Container) AddHistory(ctx context.Context, createdBy string) error {
	now := time.Now().UTC()
	c.State.PrependedHistory = append(c.State.PrependedHistory, image.History{Created: &now, CreatedBy: createdBy, EmptyLayer: true})
	return c.Save(ctx)
}
