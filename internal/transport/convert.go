package transport

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/kiln-build/kiln/internal/image"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// targetFormat decides the format of a document of type mt written to a
// destination that supports the given types (nil: any).
func targetFormat(mt string, f Format, supported []string) (Format, error) {
	isDocker := image.FormatOf(mt) == image.FormatDocker
	if f == FormatKeep {
		if supported == nil || slices.Contains(supported, mt) {
			return FormatKeep, nil
		}
		f = FormatOCI
		if !isDocker {
			f = FormatV2S2
		}
	}
	if (f == FormatV2S2) == isDocker {
		f = FormatKeep
	}
	want, ok := mt, true
	if f != FormatKeep {
		want, ok = f.image().ConvertMediaType(mt)
	}
	if !ok || supported != nil && !slices.Contains(supported, want) {
		return 0, fmt.Errorf("destination does not accept %s manifests (it takes %v)", mtOrFormat(want, ok, f), supported)
	}
	return f, nil
}

func mtOrFormat(mt string, ok bool, f Format) string {
	if ok {
		return mt
	}
	return f.String()
}

// image is the image format f writes; FormatKeep has none and stands for
// OCI here.
func (f Format) image() image.Format {
	if f == FormatV2S2 {
		return image.FormatDocker
	}
	return image.FormatOCI
}

// mapType converts one media type to format f; unknown types are kept.
func mapType(mt string, f Format) string {
	if f == FormatKeep {
		return mt
	}
	out, _ := f.image().ConvertMediaType(mt)
	return out
}

// convertManifest rewrites the media types of a manifest for format f.
// Docker schema 2 has no annotations, so they are dropped.
func convertManifest(m ocispec.Manifest, f Format) ([]byte, string, error) {
	m.MediaType = mapType(m.MediaType, f)
	if m.MediaType == "" {
		m.MediaType = mapType(image.MediaTypeOCIManifest, f)
	}
	m.Config.MediaType = mapType(m.Config.MediaType, f)
	layers := make([]ocispec.Descriptor, len(m.Layers))
	for i, l := range m.Layers {
		l.MediaType = mapType(l.MediaType, f)
		if f == FormatV2S2 {
			l.Annotations = nil
		}
		layers[i] = l
	}
	m.Layers = layers
	if f == FormatV2S2 {
		m.Annotations, m.Subject, m.ArtifactType = nil, nil, ""
	}
	raw, err := json.Marshal(m)
	return raw, m.MediaType, err
}

// convertIndex rewrites an index for format f with the given children.
func convertIndex(idx ocispec.Index, f Format) ([]byte, string, error) {
	if idx.MediaType == "" {
		idx.MediaType = image.MediaTypeOCIIndex
	}
	idx.MediaType = mapType(idx.MediaType, f)
	if f == FormatV2S2 {
		idx.Annotations, idx.Subject, idx.ArtifactType = nil, nil, ""
	}
	raw, err := json.Marshal(idx)
	return raw, idx.MediaType, err
}
