package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/internal/archive"
	"github.com/kiln-build/kiln/internal/image"
)

// ImageSource reads a stored image the way transport.Copy reads any
// source: its manifest, config and layer blobs. A layer that arrived as
// a blob is sent as that blob; a layer kiln made is named by its
// uncompressed tar, produced on demand (LayerTar) and compressed, when
// the copy asks for it, once: the compressed blob is kept, so the next
// push sends the same bytes.
type ImageSource struct {
	s   *Store
	img Image
}

// NewImageSource opens a stored image for reading.
func (s *Store) NewImageSource(ctx context.Context, img Image) *ImageSource {
	return &ImageSource{s: s, img: img}
}

// Manifest returns the stored manifest; there are no instances. A layer
// blob the manifest names that is no longer stored (a store imported
// without it) is named by its uncompressed tar instead, which changes
// the manifest's digest: the tar itself is rebuilt byte for byte.
func (src *ImageSource) Manifest(ctx context.Context, instance *digest.Digest) ([]byte, string, error) {
	// The image's manifest may have been rewritten since src was opened
	// (a build records its last step again in another format).
	img, err := src.s.Image(ctx, src.img.ID)
	if err != nil {
		return nil, "", err
	}
	src.img = img
	if instance != nil && *instance != img.ManifestDigest {
		return nil, "", fmt.Errorf("image %s has no instance %s", img.ID[:12], *instance)
	}
	raw, err := src.s.ImageManifest(img)
	if err != nil {
		return nil, "", err
	}
	raw, err = src.servable(ctx, raw)
	return raw, img.ManifestType, err
}

// servable rewrites the descriptors of layer blobs that are gone.
func (src *ImageSource) servable(ctx context.Context, raw []byte) ([]byte, error) {
	m, err := image.ParseManifest(raw)
	if err != nil {
		return nil, err
	}
	chain, err := src.s.LayerChain(ctx, src.img.TopLayer)
	if err != nil {
		return nil, err
	}
	if len(chain) != len(m.Layers) {
		return nil, fmt.Errorf("image %s: its manifest names %d layers, its chain has %d", src.img.ID[:12], len(m.Layers), len(chain))
	}
	changed := false
	f := image.FormatOf(m.MediaType)
	for i, d := range m.Layers {
		if d.Digest == chain[i].DiffID || src.s.HasBlob(d.Digest) {
			continue
		}
		m.Layers[i] = ocispec.Descriptor{MediaType: f.LayerMediaType(""), Digest: chain[i].DiffID, Size: chain[i].Size}
		changed = true
	}
	if !changed {
		return raw, nil
	}
	return json.Marshal(m)
}

// Blob opens a blob of the image: a stored blob, or a layer's
// uncompressed tar.
func (src *ImageSource) Blob(ctx context.Context, d digest.Digest) (io.ReadCloser, int64, error) {
	f, err := src.s.OpenBlob(d)
	if err == nil {
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, err
		}
		return f, fi.Size(), nil
	}
	if !errors.Is(err, ErrBlobUnknown) {
		return nil, 0, err
	}
	l, err := src.layer(ctx, d, false)
	if err != nil {
		return nil, 0, err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(src.s.LayerTar(ctx, l, pw)) }()
	return pr, l.Size, nil
}

// layer finds the layer of the image whose uncompressed tar is d, or
// (withBlobs) of which d is a blob.
func (src *ImageSource) layer(ctx context.Context, d digest.Digest, withBlobs bool) (Layer, error) {
	chain, err := src.s.LayerChain(ctx, src.img.TopLayer)
	if err != nil {
		return Layer{}, err
	}
	for _, l := range chain {
		if l.DiffID == d {
			return l, nil
		}
	}
	for _, l := range chain {
		if !withBlobs {
			break
		}
		blobs, err := src.s.LayerBlobs(ctx, l.ID)
		if err != nil {
			return Layer{}, err
		}
		for _, b := range blobs {
			if b.Digest == d {
				return l, nil
			}
		}
	}
	return Layer{}, fmt.Errorf("image %s: %w: %s", src.img.ID[:12], ErrBlobUnknown, d)
}

// CompressLayer returns the blob of the image's layer desc names (its
// tar, or a blob of it) compressed with compression ("gzip" or "zstd"):
// the one kept from an earlier push or pull when there is one, else made
// now from the layer's tar and kept. Blob serves the digest it returns. A
// layer that arrived as an uncompressed blob is that blob unless force.
func (src *ImageSource) CompressLayer(ctx context.Context, desc ocispec.Descriptor, compression string, level int, force bool) (digest.Digest, int64, error) {
	l, err := src.layer(ctx, desc.Digest, true)
	if err != nil {
		return "", 0, err
	}
	if !force && l.Blob != nil && l.Blob.Digest == l.DiffID && desc.Digest == l.DiffID {
		return l.DiffID, l.Size, nil
	}
	return src.s.compressedLayer(ctx, l, compression, level)
}

func (s *Store) compressedLayer(ctx context.Context, l Layer, compression string, level int) (digest.Digest, int64, error) {
	blobs, err := s.LayerBlobs(ctx, l.ID)
	if err != nil {
		return "", 0, err
	}
	for _, b := range blobs {
		if image.LayerCompression(b.MediaType) == compression && b.Digest != l.DiffID {
			return b.Digest, b.Size, nil
		}
	}
	c, err := archive.ParseCompression(compression)
	if err != nil {
		return "", 0, err
	}
	pr, pw := io.Pipe()
	go func() {
		zw, err := archive.Compress(pw, c, level)
		if err == nil {
			err = s.LayerTar(ctx, l, zw)
			if cerr := zw.Close(); err == nil {
				err = cerr
			}
		}
		pw.CloseWithError(err)
	}()
	d, n, err := s.PutBlob(ctx, "", pr)
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return "", 0, fmt.Errorf("compressing layer %s: %w", l.DiffID, err)
	}
	b := LayerBlob{Digest: d, MediaType: image.FormatOCI.LayerMediaType(compression), Size: n}
	if err := s.AddLayerBlob(ctx, l.ID, b); err != nil {
		return "", 0, err
	}
	return d, n, nil
}

// Close implements the source contract; nothing is held.
func (src *ImageSource) Close() error { return nil }
