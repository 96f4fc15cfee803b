package images

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
)

// LookupList finds a stored manifest list by name, or by its ID (see
// ListID) in full or as a unique prefix of at least three hex digits,
// with or without "sha256:": what Buildah accepts for a list, which is an
// image in its store. An unknown list is store.ErrManifestListUnknown; a
// prefix of two lists' IDs is store.ErrAmbiguous.
func LookupList(ctx context.Context, st *store.Store, ref string) (store.ManifestList, error) {
	ml, err := st.ManifestList(ctx, ref)
	if !errors.Is(err, store.ErrManifestListUnknown) {
		return ml, err
	}
	prefix := strings.TrimPrefix(ref, "sha256:")
	if len(prefix) < 3 || len(prefix) > 64 || !IsImageID(prefix) {
		return ml, err
	}
	lists, lerr := StoredLists(ctx, st)
	if lerr != nil {
		return ml, lerr
	}
	var found []store.ManifestList
	for _, l := range lists {
		// A list tagged under several names is one list (one ID).
		if strings.HasPrefix(ListID(l), prefix) && (len(found) == 0 || ListID(found[0]) != ListID(l)) {
			found = append(found, l)
		}
	}
	switch len(found) {
	case 0:
		return ml, err
	case 1:
		return found[0], nil
	}
	return ml, fmt.Errorf("%w %q: it matches several manifest lists", store.ErrAmbiguous, ref)
}

// ListImage is the stored image a manifest list holds for platform p
// (empty OS and architecture are this machine's; the variant is compared
// only when p has one): the image Buildah's inspect and from use for a
// list. A list with no entry for p, or whose entry is not a stored image
// (added from a registry), is store.ErrImageUnknown.
func ListImage(ctx context.Context, st *store.Store, ml store.ManifestList, p transport.Platform) (store.Image, error) {
	if p.OS == "" {
		p.OS = runtime.GOOS
	}
	if p.Architecture == "" {
		p.Architecture = runtime.GOARCH
	}
	var idx ocispec.Index
	if err := json.Unmarshal(ml.Index, &idx); err != nil {
		return store.Image{}, fmt.Errorf("parsing manifest list %s: %w", ml.Name, err)
	}
	none := fmt.Errorf("no image found in manifest list for architecture %s, variant %q, OS %s: %w",
		p.Architecture, p.Variant, p.OS, store.ErrImageUnknown)
	d, err := transport.MatchPlatform(idx, p)
	if err != nil {
		return store.Image{}, none
	}
	where := ml.Instances[d.Digest]
	if !isFullImageID(where) {
		return store.Image{}, none
	}
	img, err := st.Image(ctx, where)
	if err != nil {
		return store.Image{}, fmt.Errorf("instance %s of manifest list %s: %w", d.Digest, ml.Name, err)
	}
	return img, nil
}
