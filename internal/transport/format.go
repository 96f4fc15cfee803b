package transport

import (
	"fmt"
	"strings"
)

// Format is the manifest format Copy writes.
type Format int

const (
	// FormatKeep keeps the source format unless the destination refuses it.
	FormatKeep Format = iota
	// FormatOCI writes OCI manifests and indexes.
	FormatOCI
	// FormatV2S2 writes Docker schema 2 manifests and manifest lists.
	FormatV2S2
)

// ParseFormat parses "" or "keep", "oci", and "v2s2" (also "docker").
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "", "keep":
		return FormatKeep, nil
	case "oci":
		return FormatOCI, nil
	case "v2s2", "docker", "dockerv2":
		return FormatV2S2, nil
	}
	return 0, fmt.Errorf("unknown manifest format %q: use oci or v2s2", s)
}

// String returns the name ParseFormat accepts.
func (f Format) String() string {
	return [...]string{"keep", "oci", "v2s2"}[f]
}

// Compression is how Copy compresses uncompressed layers.
type Compression int

const (
	// CompressionKeep copies layers as they are.
	CompressionKeep Compression = iota
	// CompressionGzip gzips uncompressed layers.
	CompressionGzip
	// CompressionZstd compresses uncompressed layers with zstd.
	CompressionZstd
)

// ParseCompression parses "", "gzip" and "zstd".
func ParseCompression(s string) (Compression, error) {
	switch strings.ToLower(s) {
	case "", "keep":
		return CompressionKeep, nil
	case "gzip":
		return CompressionGzip, nil
	case "zstd":
		return CompressionZstd, nil
	}
	return 0, fmt.Errorf("unknown compression %q: use gzip or zstd", s)
}

// String returns the name ParseCompression accepts.
func (c Compression) String() string {
	return [...]string{"keep", "gzip", "zstd"}[c]
}
