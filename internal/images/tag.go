package images

import (
	"context"
	"errors"
	"fmt"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store"
)

// Tag gives the image ref names the names (as typed: "name",
// "host/repo:tag"), as `tag` does. When ref names no image but a
// manifest list, each name becomes another name of that list: a list
// with the same index and instances, as Buildah's tag of a list makes.
func Tag(ctx context.Context, st *store.Store, ref string, names []string) error {
	full := make([]string, 0, len(names))
	for _, n := range names {
		f, err := image.NormalizeName(n)
		if err != nil {
			return err
		}
		full = append(full, f)
	}
	img, err := st.LookupImage(ctx, ref)
	if err == nil {
		return st.AddNames(ctx, img.ID, full)
	}
	if !errors.Is(err, store.ErrImageUnknown) {
		return err
	}
	ml, lerr := st.ManifestList(ctx, ref)
	if errors.Is(lerr, store.ErrManifestListUnknown) {
		return fmt.Errorf("%s: %w", ref, store.ErrImageUnknown)
	}
	if lerr != nil {
		return lerr
	}
	for _, n := range full {
		tagged := ml
		tagged.Name = n
		if err := st.CreateManifestList(ctx, tagged); err != nil {
			return fmt.Errorf("tagging manifest list %s as %s: %w", ml.Name, n, err)
		}
	}
	return nil
}
