package image

import (
	"encoding/json"
	"fmt"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ParseManifest decodes a single-image manifest of either format and
// validates every digest it names, so that none can become a bad path.
func ParseManifest(raw []byte) (*ocispec.Manifest, error) {
	if len(raw) > MaxDocumentSize {
		return nil, fmt.Errorf("manifest is %d bytes, over the %d-byte limit", len(raw), MaxDocumentSize)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("decoding manifest: %w", err)
	}
	if m.MediaType == "" {
		m.MediaType = MediaTypeOCIManifest
	}
	if !IsManifest(m.MediaType) {
		return nil, fmt.Errorf("unsupported manifest media type %q", m.MediaType)
	}
	if err := m.Config.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("manifest names a bad config digest %q: %w", m.Config.Digest, err)
	}
	for _, l := range m.Layers {
		if err := l.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("manifest names a bad layer digest %q: %w", l.Digest, err)
		}
	}
	return &m, nil
}

// NewManifest builds a manifest of format f for a config and its layers.
func NewManifest(f Format, config ocispec.Descriptor, layers []ocispec.Descriptor, annotations map[string]string) ([]byte, error) {
	m := ocispec.Manifest{MediaType: f.ManifestMediaType(), Config: config, Layers: layers}
	m.SchemaVersion = 2
	if f == FormatOCI {
		m.Annotations = annotations
	}
	if m.Layers == nil {
		m.Layers = []ocispec.Descriptor{}
	}
	return json.Marshal(m)
}

// FromBytes returns the descriptor of a document.
func FromBytes(mediaType string, raw []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
}
