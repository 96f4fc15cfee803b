package store

import (
	"context"
	"errors"
	"fmt"
	"io"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/internal/archive"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store/driver"
)

// ErrLayerContentLost reports a layer whose tar can be produced from
// nothing the store still has: no blob of it, and no files with a record
// of the tar they came from.
var ErrLayerContentLost = errors.New("layer content is not stored")

// LayerTar writes the layer's uncompressed tar to w and checks, as it
// streams, that it hashes to the layer's diff ID. The tar is the one the
// layer was made from, byte for byte: rebuilt from the layer's files and
// the tar-split record kept when they were made, or the layer's stored
// blob decompressed. Only a layer kiln made before such records existed
// is written afresh from its files (its tar was kiln's own, so it comes
// out the same).
func (s *Store) LayerTar(ctx context.Context, l Layer, w io.Writer) error {
	h := newCountingHash()
	mw := io.MultiWriter(w, h)
	var err error
	switch {
	case l.Files && s.hasTarSplit(l.ID):
		err = s.rebuildTar(ctx, l, mw)
	case s.hasAnyBlob(ctx, l):
		err = s.decompressBlob(ctx, l, mw)
	case l.Files:
		err = s.driver.Diff(ctx, l.ID, mw, driver.DiffOptions{ModTimeUpperBound: l.MTimeBound})
	default:
		return fmt.Errorf("%w: layer %s has neither files nor a blob; run `kiln storage check`", ErrLayerContentLost, l.DiffID)
	}
	if err != nil {
		return fmt.Errorf("reading layer %s: %w", l.DiffID, err)
	}
	if got := h.digest(); got != l.DiffID {
		return fmt.Errorf("layer %s on disk: %w (now hashes to %s): the layer was modified; run `kiln storage check`", l.DiffID, ErrDigestMismatch, got)
	}
	return nil
}

func (s *Store) rebuildTar(ctx context.Context, l Layer, w io.Writer) error {
	meta, err := s.openTarSplit(l.ID)
	if err != nil {
		return err
	}
	defer meta.Close()
	root, err := s.driver.Content(l.ID)
	if err != nil {
		return err
	}
	return archive.RebuildTar(ctx, meta, root, w)
}

func (s *Store) hasAnyBlob(ctx context.Context, l Layer) bool {
	if s.HasBlob(l.DiffID) {
		return true
	}
	blobs, err := s.LayerBlobs(ctx, l.ID)
	return err == nil && len(blobs) > 0
}

func (s *Store) decompressBlob(ctx context.Context, l Layer, w io.Writer) error {
	f, err := s.openLayerBlob(ctx, l)
	if err != nil {
		return err
	}
	defer f.Close()
	rc, err := uncompressed(ctxReader{ctx, f})
	if err != nil {
		return fmt.Errorf("blob %s: %w", f.digest, err)
	}
	defer rc.Close()
	_, err = io.Copy(w, rc)
	return err
}

// LayerDescriptors returns the manifest's layer descriptors for the chain
// ending at top, in format f. A layer that arrived as a blob is named by
// that blob, so that an image inheriting it sends the very bytes it came
// as and keeps their digest (only the media type is spelled as f spells
// it); a layer kiln made, or whose blob is gone, is named by its
// uncompressed tar.
func (s *Store) LayerDescriptors(ctx context.Context, top string, f image.Format) ([]ocispec.Descriptor, error) {
	chain, err := s.LayerChain(ctx, top)
	if err != nil {
		return nil, err
	}
	out := make([]ocispec.Descriptor, 0, len(chain))
	for _, l := range chain {
		d := ocispec.Descriptor{MediaType: f.LayerMediaType(""), Digest: l.DiffID, Size: l.Size}
		b := l.Blob
		switch {
		case b == nil || b.Digest == l.DiffID || !s.HasBlob(b.Digest):
		case f == image.FormatDocker && image.LayerCompression(b.MediaType) == "zstd":
			// Docker's manifests have no zstd layers that other tools
			// read: the layer goes by its tar (compressed when pushed).
		default:
			d = ocispec.Descriptor{MediaType: f.LayerMediaType(image.LayerCompression(b.MediaType)), Digest: b.Digest, Size: b.Size}
		}
		out = append(out, d)
	}
	return out, nil
}
