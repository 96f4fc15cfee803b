package images

import (
	"context"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
)

// BuiltImage is one platform's image of a multi-platform build.
type BuiltImage struct {
	// ID is the stored image.
	ID string
	// Platform is the platform it was built for; its entry records it,
	// the fields it leaves empty taken from the image's config.
	Platform ocispec.Platform
}

// SetBuiltList makes the stored manifest list name (a full name) list
// exactly the images built, in order: what build -t NAME does with
// several platforms, as BuildKit names the index it makes. An existing
// list of that name is replaced in one transaction; an image that had the
// name loses it, as a tag moves to the newest build. It returns the
// list's ID (see ListID).
func SetBuiltList(ctx context.Context, st *store.Store, name string, built []BuiltImage) (string, error) {
	raw, mt := transport.NewIndex()
	instances := map[digest.Digest]string{}
	var descs []ocispec.Descriptor
	for _, b := range built {
		o := AddOptions{Platform: b.Platform}
		ds, where, err := listEntries(ctx, st, b.ID, o)
		if err != nil {
			return "", fmt.Errorf("adding image %s to manifest list %s: %w", b.ID, name, err)
		}
		for _, d := range ds {
			d = o.override(d)
			descs = append(descs, d)
			instances[d.Digest] = where(d.Digest)
		}
	}
	raw, err := transport.EditIndex(raw, func(in []ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		return transport.AddInstances(in, descs...), nil
	})
	if err != nil {
		return "", err
	}
	if err := st.RemoveName(ctx, name); err != nil && !errors.Is(err, store.ErrImageUnknown) {
		return "", fmt.Errorf("taking the name %s for a manifest list: %w", name, err)
	}
	ml := store.ManifestList{Name: name, Index: raw, MediaType: mt, Instances: instances}
	err = st.CreateManifestList(ctx, ml)
	if errors.Is(err, store.ErrManifestListExists) {
		err = st.UpdateManifestList(ctx, name, func(old *store.ManifestList) error {
			old.Index, old.MediaType, old.Instances = raw, mt, instances
			return nil
		})
	}
	if err != nil {
		return "", fmt.Errorf("recording manifest list %s: %w", name, err)
	}
	return ListID(ml), nil
}

// listedImages are the stored images some stored manifest list lists (its
// instances recorded by image ID): never dangling nor hidden as a build's
// intermediate step, so that rmi --prune does not break a list (as Podman's
// image prune did, containers/podman#25525) and `images` shows every image
// of a multi-platform build.
func listedImages(ctx context.Context, st *store.Store) (map[string]bool, error) {
	lists, err := StoredLists(ctx, st)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, ml := range lists {
		for _, where := range ml.Instances {
			if isFullImageID(where) {
				out[where] = true
			}
		}
	}
	return out, nil
}
