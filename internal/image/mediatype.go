package image

import (
	"fmt"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types of the documents and layers kiln reads and writes.
const (
	MediaTypeOCIManifest = ocispec.MediaTypeImageManifest
	MediaTypeOCIIndex    = ocispec.MediaTypeImageIndex
	MediaTypeOCIConfig   = ocispec.MediaTypeImageConfig
	MediaTypeOCILayer    = ocispec.MediaTypeImageLayer
	MediaTypeOCILayerGz  = ocispec.MediaTypeImageLayerGzip
	MediaTypeOCILayerZst = ocispec.MediaTypeImageLayerZstd

	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
	MediaTypeDockerLayerGz      = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerLayerZst     = "application/vnd.docker.image.rootfs.diff.tar.zstd"

	// Foreign (Docker) and non-distributable (OCI, deprecated) layers: read
	// like the others, never made by kiln.
	MediaTypeDockerForeignLayerGz = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	MediaTypeOCINondistLayerGz    = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"

	// MediaTypeOCIEmpty is OCI's empty descriptor ("{}"), the config of
	// artifacts.
	MediaTypeOCIEmpty = "application/vnd.oci.empty.v1+json"
	// MediaTypeInToto is an in-toto statement (attestations).
	MediaTypeInToto = "application/vnd.in-toto+json"
	// MediaTypeCosignSimpleSigning is a cosign signature payload.
	MediaTypeCosignSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
)

// ociToDocker pairs each OCI media type with its Docker schema 2 twin;
// dockerToOCI is its inverse.
var ociToDocker = map[string]string{
	MediaTypeOCIManifest:       MediaTypeDockerManifest,
	MediaTypeOCIIndex:          MediaTypeDockerManifestList,
	MediaTypeOCIConfig:         MediaTypeDockerConfig,
	MediaTypeOCILayer:          MediaTypeDockerLayer,
	MediaTypeOCILayerGz:        MediaTypeDockerLayerGz,
	MediaTypeOCILayerZst:       MediaTypeDockerLayerZst,
	MediaTypeOCINondistLayerGz: MediaTypeDockerForeignLayerGz,
}

var dockerToOCI = func() map[string]string {
	m := make(map[string]string, len(ociToDocker))
	for k, v := range ociToDocker {
		m[v] = k
	}
	return m
}()

// ConvertMediaType returns the media type that stands for mt in format f:
// the Docker twin of an OCI type, or the OCI twin of a Docker one. A type
// already of f, or with no twin, is returned as it is, with ok false.
func (f Format) ConvertMediaType(mt string) (string, bool) {
	table := dockerToOCI
	if f == FormatDocker {
		table = ociToDocker
	}
	if twin, ok := table[mt]; ok {
		return twin, true
	}
	return mt, false
}

// MaxDocumentSize bounds manifests, indexes and configs: anything larger is
// refused before it is parsed or stored.
const MaxDocumentSize = 4 << 20

// Format is the manifest format an image is written in.
type Format int

const (
	// FormatOCI writes OCI image-spec manifests and configs.
	FormatOCI Format = iota
	// FormatDocker writes Docker schema 2 manifests and configs, which keep
	// the Docker-only fields (healthcheck, onbuild, shell, …).
	FormatDocker
)

// ParseFormat parses a --format value: "oci", or "docker" (also "v2s2").
func ParseFormat(s string) (Format, error) {
	switch s {
	case "oci", "":
		return FormatOCI, nil
	case "docker", "v2s2", "dockerv2":
		return FormatDocker, nil
	}
	return 0, fmt.Errorf("unknown image format %q: use oci or docker", s)
}

// FormatOf returns the format of a manifest media type (OCI for anything
// that is not Docker's).
func FormatOf(manifestMediaType string) Format {
	if manifestMediaType == MediaTypeDockerManifest || manifestMediaType == MediaTypeDockerManifestList {
		return FormatDocker
	}
	return FormatOCI
}

// String returns the name ParseFormat accepts.
func (f Format) String() string {
	if f == FormatDocker {
		return "docker"
	}
	return "oci"
}

// ManifestMediaType is the media type of a manifest in this format.
func (f Format) ManifestMediaType() string {
	if f == FormatDocker {
		return MediaTypeDockerManifest
	}
	return MediaTypeOCIManifest
}

// ConfigMediaType is the media type of a config in this format.
func (f Format) ConfigMediaType() string {
	if f == FormatDocker {
		return MediaTypeDockerConfig
	}
	return MediaTypeOCIConfig
}

// LayerMediaType is the media type of an uncompressed, gzip or zstd layer
// in this format; compression is "", "gzip" or "zstd".
func (f Format) LayerMediaType(compression string) string {
	switch {
	case f == FormatDocker && compression == "gzip":
		return MediaTypeDockerLayerGz
	case f == FormatDocker && compression == "zstd":
		return MediaTypeDockerLayerZst
	case f == FormatDocker:
		return MediaTypeDockerLayer
	case compression == "gzip":
		return MediaTypeOCILayerGz
	case compression == "zstd":
		return MediaTypeOCILayerZst
	}
	return MediaTypeOCILayer
}

// IsIndex reports whether mt is an OCI index or a Docker manifest list.
func IsIndex(mt string) bool {
	return mt == MediaTypeOCIIndex || mt == MediaTypeDockerManifestList
}

// IsManifest reports whether mt is a single-image manifest kiln understands.
func IsManifest(mt string) bool {
	return mt == MediaTypeOCIManifest || mt == MediaTypeDockerManifest
}

// LayerCompression returns "", "gzip" or "zstd" for a layer media type.
func LayerCompression(mt string) string {
	switch mt {
	case MediaTypeOCILayerGz, MediaTypeDockerLayerGz, MediaTypeOCINondistLayerGz, MediaTypeDockerForeignLayerGz:
		return "gzip"
	case MediaTypeOCILayerZst, MediaTypeDockerLayerZst:
		return "zstd"
	}
	return ""
}
