package images

import (
	"context"
	"fmt"
	"strings"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/store"
)

// FromOptions say how From finds its image and what container it makes.
type FromOptions struct {
	Ensure EnsureOptions
	// Container describes the new container; From sets its Image.
	Container container.NewOptions
}

// From makes a working container from ref: "scratch", a stored image, or
// one Ensure pulls. "docker://NAME" is the registry image NAME, as Buildah
// reads it. An image pulled from an archive or a layout is used by its ID
// (the source may have given it no name).
func From(ctx context.Context, st *store.Store, ref string, o FromOptions) (*container.Container, error) {
	ref = strings.TrimPrefix(ref, "docker://")
	o.Container.Image, o.Container.Spec = ref, ref
	if ref != "scratch" {
		img, err := Ensure(ctx, st, ref, o.Ensure)
		if err != nil {
			return nil, err
		}
		if IsTransportRef(ref) {
			o.Container.Image = img.ID
		}
	}
	o.Container.BaseAnnotations = true
	c, err := container.New(ctx, st, o.Container)
	if err != nil {
		return nil, fmt.Errorf("creating working container from %q: %w", ref, err)
	}
	return c, nil
}
