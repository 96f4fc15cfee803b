package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/internal/image"
)

// ImageSource reads a stored image the way transport.Copy reads any
// source: its manifest, config and layer blobs. Layers committed here
// have no stored blob; their tar is produced from the snapshot on demand
// and checked against the diff ID as it streams.
type ImageSource struct {
	s   *Store
	img Image
}

// NewImageSource opens a stored image for reading.
func (s *Store) NewImageSource(ctx context.Context, img Image) *ImageSource {
	return &ImageSource{s: s, img: img}
}

// Manifest returns the stored manifest; there are no instances.
func (src *ImageSource) Manifest(ctx context.Context, instance *digest.Digest) ([]byte, string, error) {
	if instance != nil && *instance != src.img.ManifestDigest {
		return nil, "", fmt.Errorf("image %s has no instance %s", src.img.ID[:12], *instance)
	}
	raw, err := src.s.ImageManifest(src.img)
	return raw, src.img.ManifestType, err
}

// Blob opens a blob of the image.
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
	chain, err := src.s.LayerChain(ctx, src.img.TopLayer)
	if err != nil {
		return nil, 0, err
	}
	for _, l := range chain {
		if l.DiffID == d {
			pr, pw := io.Pipe()
			go func() { pw.CloseWithError(src.s.LayerDiff(ctx, l, pw)) }()
			return pr, l.Size, nil
		}
	}
	return nil, 0, fmt.Errorf("image %s: %w: %s", src.img.ID[:12], ErrBlobUnknown, d)
}

// Close implements the source contract; nothing is held.
func (src *ImageSource) Close() error { return nil }

// ImageDestination writes an image into the store as transport.Copy
// writes any destination: blobs are verified as they arrive, and Commit
// applies the layers (checking each against its diff ID) and records the
// image under its names.
type ImageDestination struct {
	s        *Store
	names    []string
	manifest []byte
	mt       string
	img      Image
}

// NewImageDestination opens the store for an image to be named names.
func (s *Store) NewImageDestination(names []string) *ImageDestination {
	return &ImageDestination{s: s, names: names}
}

// HasBlob reports whether the blob, or the layer it holds, is stored.
func (d *ImageDestination) HasBlob(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	if d.s.HasBlob(desc.Digest) {
		return true, nil
	}
	return false, nil
}

// PutBlob stores a blob after checking its digest and size.
func (d *ImageDestination) PutBlob(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	if err := d.s.EnsureSpace(ctx, desc.Size); err != nil {
		return err
	}
	if desc.Size > 0 {
		r = io.LimitReader(r, desc.Size+1)
	}
	_, n, err := d.s.PutBlob(ctx, desc.Digest, r)
	if err == nil && desc.Size > 0 && n != desc.Size {
		err = fmt.Errorf("blob %s: %w (size %d, want %d)", desc.Digest, ErrDigestMismatch, n, desc.Size)
	}
	return err
}

// PutManifest keeps the manifest for Commit; indexes are not stored.
func (d *ImageDestination) PutManifest(ctx context.Context, raw []byte, mediaType string, instance *digest.Digest) error {
	if image.IsIndex(mediaType) {
		return nil
	}
	d.manifest, d.mt = raw, mediaType
	return nil
}

// SupportedManifestTypes: the store keeps single-image manifests of both formats.
func (d *ImageDestination) SupportedManifestTypes() []string {
	return []string{image.MediaTypeOCIManifest, image.MediaTypeDockerManifest}
}

// Commit applies the image's layers and records it.
func (d *ImageDestination) Commit(ctx context.Context) error {
	if d.manifest == nil {
		return fmt.Errorf("no manifest was written")
	}
	m, err := image.ParseManifest(d.manifest)
	if err != nil {
		return err
	}
	rawCfg, err := d.s.ReadBlob(m.Config.Digest, image.MaxDocumentSize)
	if err != nil {
		return err
	}
	cfg, err := image.ParseConfig(rawCfg)
	if err != nil {
		return err
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return fmt.Errorf("image config lists %d layers, manifest %d", len(cfg.RootFS.DiffIDs), len(m.Layers))
	}
	top := ""
	for i, desc := range m.Layers {
		if top, err = d.applyBlob(ctx, top, cfg.RootFS.DiffIDs[i], desc); err != nil {
			return err
		}
	}
	created := cfg.Created
	if created == nil {
		created = new(time.Time)
	}
	d.img, err = d.s.CreateImage(ctx, NewImage{TopLayer: top, Config: rawCfg, Manifest: d.manifest, MediaType: d.mt, Names: d.names, Created: *created})
	return err
}

func (d *ImageDestination) applyBlob(ctx context.Context, parent string, diffID digest.Digest, desc ocispec.Descriptor) (string, error) {
	id := ChainID(parent, diffID)
	if _, err := d.s.Layer(ctx, id); err == nil {
		return id, nil
	}
	f, err := d.s.OpenBlob(desc.Digest)
	if err != nil {
		return "", err
	}
	defer f.Close()
	l, err := d.s.ApplyLayer(ctx, parent, diffID, f)
	if err != nil {
		return "", err
	}
	if desc.Digest != diffID {
		if err := d.s.AddLayerBlob(ctx, l.ID, LayerBlob{Digest: desc.Digest, MediaType: desc.MediaType, Size: desc.Size}); err != nil {
			return "", err
		}
	} else {
		// An uncompressed blob is the layer itself: the snapshot holds it.
		_ = os.Remove(d.s.blobPath(desc.Digest))
	}
	return l.ID, nil
}

// Image is the image Commit recorded.
func (d *ImageDestination) Image() Image { return d.img }

// Close implements the destination contract; blobs of an uncommitted
// copy stay until GC.
func (d *ImageDestination) Close() error { return nil }
