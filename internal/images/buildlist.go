package images

import (
	"context"
	"errors"
	"fmt"
	"sort"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
)

// AddBuilt adds the stored image id, built for platform p, to the
// manifest list named list, creating the list when there is none
// (build --manifest). The entry records p, this machine's fields
// filled in from the image's config.
func AddBuilt(ctx context.Context, st *store.Store, list, id string, p ocispec.Platform) error {
	raw, mt := transport.NewIndex()
	err := st.CreateManifestList(ctx, store.ManifestList{Name: list, Index: raw, MediaType: mt})
	if err != nil && !errors.Is(err, store.ErrManifestListExists) {
		return fmt.Errorf("creating manifest list %s: %w", list, err)
	}
	_, err = AddToList(ctx, st, list, id, AddOptions{Platform: p})
	return err
}

// Platforms lists the platforms ref is available for: each entry of the
// list a registry (or other transport) holds for it, or the stored
// image's platform when the source cannot be read.
func Platforms(ctx context.Context, st *store.Store, ref string, sys *transport.SystemContext) ([]ocispec.Platform, error) {
	var remoteErr error
	if r, err := transport.ParseReference(ref); err == nil {
		src, err := r.NewSource(ctx, sys)
		if err == nil {
			defer src.Close()
			descs, err := transport.ListInstances(ctx, src, transport.Platform{}, true)
			if err == nil {
				var out []ocispec.Platform
				for _, d := range descs {
					if d.Platform != nil {
						out = append(out, *d.Platform)
					}
				}
				return out, nil
			}
			remoteErr = err
		} else {
			remoteErr = err
		}
	}
	img, err := st.LookupImage(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("finding the platforms of %s: %w", ref, errors.Join(remoteErr, err))
	}
	raw, err := st.ImageConfig(img)
	if err != nil {
		return nil, err
	}
	cfg, err := image.ParseConfig(raw)
	if err != nil {
		return nil, err
	}
	return []ocispec.Platform{{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}}, nil
}

// CommonPlatforms returns the platforms (OS, architecture and variant)
// every set holds, sorted.
func CommonPlatforms(sets [][]ocispec.Platform) []ocispec.Platform {
	key := func(p ocispec.Platform) string { return p.OS + "/" + p.Architecture + "/" + p.Variant }
	count := map[string]int{}
	byKey := map[string]ocispec.Platform{}
	for _, set := range sets {
		seen := map[string]bool{}
		for _, p := range set {
			k := key(p)
			if seen[k] {
				continue
			}
			seen[k] = true
			count[k]++
			byKey[k] = ocispec.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}
		}
	}
	var keys []string
	for k, n := range count {
		if n == len(sets) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := make([]ocispec.Platform, len(keys))
	for i, k := range keys {
		out[i] = byKey[k]
	}
	return out
}

// ImagePlatform is the platform the stored image's config records.
func ImagePlatform(st *store.Store, img store.Image) (ocispec.Platform, error) {
	raw, err := st.ImageConfig(img)
	if err != nil {
		return ocispec.Platform{}, err
	}
	cfg, err := image.ParseConfig(raw)
	if err != nil {
		return ocispec.Platform{}, err
	}
	return ocispec.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}, nil
}
