package transport

import (
	"encoding/json"
	"fmt"
	"slices"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker schema 2 media types.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
	MediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerLayerZstd    = "application/vnd.docker.image.rootfs.diff.tar.zstd"
	MediaTypeDockerForeignGzip  = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

// IsIndex reports whether mt is an OCI index or a Docker manifest list.
func IsIndex(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == MediaTypeDockerManifestList
}

// ociToDocker maps the media types of OCI documents and layers to Docker's;
// dockerToOCI is its inverse.
var ociToDocker = map[string]string{
	ocispec.MediaTypeImageManifest:  MediaTypeDockerManifest,
	ocispec.MediaTypeImageIndex:     MediaTypeDockerManifestList,
	ocispec.MediaTypeImageConfig:    MediaTypeDockerConfig,
	ocispec.MediaTypeImageLayer:     MediaTypeDockerLayer,
	ocispec.MediaTypeImageLayerGzip: MediaTypeDockerLayerGzip,
	ocispec.MediaTypeImageLayerZstd: MediaTypeDockerLayerZstd,
	//nolint:staticcheck // non-distributable layers are deprecated but still exist.
	ocispec.MediaTypeImageLayerNonDistributableGzip: MediaTypeDockerForeignGzip,
}

var dockerToOCI = func() map[string]string {
	m := map[string]string{}
	for k, v := range ociToDocker {
		m[v] = k
	}
	return m
}()

// targetFormat decides the format of a document of type mt written to a
// destination that supports the given types (nil: any).
func targetFormat(mt string, f Format, supported []string) (Format, error) {
	isDocker := mt == MediaTypeDockerManifest || mt == MediaTypeDockerManifestList
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
	want := mt
	if f == FormatOCI {
		want = dockerToOCI[mt]
	} else if f == FormatV2S2 {
		want = ociToDocker[mt]
	}
	if want == "" || supported != nil && !slices.Contains(supported, want) {
		return 0, fmt.Errorf("destination does not accept %s manifests (it takes %v)", mtOrFormat(want, f), supported)
	}
	return f, nil
}

func mtOrFormat(mt string, f Format) string {
	if mt != "" {
		return mt
	}
	return f.String()
}

// mapType converts one media type to format f; unknown types are kept.
func mapType(mt string, f Format) string {
	table := ociToDocker
	if f == FormatOCI {
		table = dockerToOCI
	}
	if v, ok := table[mt]; ok && f != FormatKeep {
		return v
	}
	return mt
}

// convertManifest rewrites the media types of a manifest for format f.
// Docker schema 2 has no annotations, so they are dropped.
func convertManifest(m ocispec.Manifest, f Format) ([]byte, string, error) {
	m.MediaType = mapType(m.MediaType, f)
	if m.MediaType == "" {
		m.MediaType = mapType(ocispec.MediaTypeImageManifest, f)
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
		idx.MediaType = ocispec.MediaTypeImageIndex
	}
	idx.MediaType = mapType(idx.MediaType, f)
	if f == FormatV2S2 {
		idx.Annotations, idx.Subject, idx.ArtifactType = nil, nil, ""
	}
	raw, err := json.Marshal(idx)
	return raw, idx.MediaType, err
}
