package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/kiln-build/kiln/internal/store"
)

// Verify checks that st holds everything the export idx describes:
// every layer, every image with its manifest and names, every container
// with its name, layer and state. A migration runs it before it switches
// stores.
func Verify(ctx context.Context, st *store.Store, idx *Index) error {
	in, err := st.Inventory(ctx)
	if err != nil {
		return err
	}
	var errs []error
	layers := map[string]store.Layer{}
	for _, l := range in.Layers {
		layers[l.ID] = l
	}
	for _, l := range idx.Layers {
		if got, ok := layers[l.ID]; !ok || got.DiffID != l.DiffID {
			errs = append(errs, fmt.Errorf("layer %s is missing", l.ID))
		}
	}
	images := map[string]store.Image{}
	for _, img := range in.Images {
		images[img.ID] = img
	}
	for _, want := range idx.Images {
		got, ok := images[want.ID]
		if !ok || got.ManifestDigest != want.ManifestDigest || got.TopLayer != want.TopLayer {
			errs = append(errs, fmt.Errorf("image %s is missing or differs", want.ID))
			continue
		}
		have := map[string]bool{}
		for _, n := range got.Names {
			have[n] = true
		}
		for _, n := range want.Names {
			if !have[n.Name] {
				errs = append(errs, fmt.Errorf("image %s lost its name %s", want.ID, n.Name))
			}
		}
	}
	ctrs := map[string]store.Container{}
	for _, c := range in.Containers {
		ctrs[c.ID] = c
	}
	for _, want := range idx.Containers {
		got, ok := ctrs[want.ID]
		if !ok || got.Name != want.Name || got.Layer != want.Layer || !bytes.Equal(got.Data, want.Data) {
			errs = append(errs, fmt.Errorf("container %s is missing or differs", want.Name))
		}
	}
	return errors.Join(errs...)
}
