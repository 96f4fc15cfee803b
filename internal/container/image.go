package container

import (
	"context"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store"
)

// WriteImage records config cfg on layer top (a chain the store holds)
// as an unnamed image in format f, as a commit writes one: for a build
// step that makes its layer without a container. It names no container
// or parent image (the ones cfg inherited are its base's). The image is
// held, as with CommitOptions.Hold.
func WriteImage(ctx context.Context, st *store.Store, cfg *image.Config, top string, f image.Format) (store.Image, error) {
	cfg.Container, cfg.Parent = "", ""
	return storeImage(ctx, st, cfg, top, f, imageExtras{hold: true})
}
