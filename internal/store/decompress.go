package store

import (
	"io"

	"github.com/kiln-build/kiln/internal/archive"
)

// uncompressed opens r's uncompressed content, whatever its compression.
func uncompressed(r io.Reader) (io.ReadCloser, error) {
	rc, _, err := archive.Decompress(r)
	return rc, err
}
