package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/internal/archive"
	"github.com/kiln-build/kiln/internal/image"
)

// ImageDestination writes an image into the store as transport.Copy
// writes any destination. Blobs are verified as they arrive, and each
// layer blob is decompressed on the way in to learn the digest of its
// tar, in the same pass. Commit checks those against the config's diff
// IDs and records the layers as blobs: nothing is unpacked until
// something needs the files (Store.EnsureFiles). A copy that fails or is
// refused leaves nothing behind: Close takes back every blob it wrote
// that nothing else names.
type ImageDestination struct {
	s     *Store
	names []string

	mu       sync.Mutex
	contents map[digest.Digest]layerContent // what each layer blob holds
	written  []digest.Digest                // blobs this copy stored

	manifest   []byte
	mt         string
	signatures map[digest.Digest][][]byte // PutSignatures's, by manifest; Commit keeps the image's
	img        Image
	held       []string
	committed  bool
}

// layerContent is what a layer blob decompresses to.
type layerContent struct {
	diffID digest.Digest
	size   int64
}

// NewImageDestination opens the store for an image to be named names.
// The caller must Close it.
func (s *Store) NewImageDestination(names []string) *ImageDestination {
	return &ImageDestination{s: s, names: names, contents: map[digest.Digest]layerContent{}}
}

// HasBlob reports whether the blob is stored.
func (d *ImageDestination) HasBlob(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	return d.s.HasBlob(desc.Digest), nil
}

// CheckSpace refuses, before anything is written, an image whose blobs
// the store lacks would not fit above its minimum free space. Layers are
// stored as their blobs; their files are made (and their space checked)
// when something needs them.
func (d *ImageDestination) CheckSpace(ctx context.Context, blobs []ocispec.Descriptor) error {
	var need int64
	for _, b := range blobs {
		if b.Size > 0 && !d.s.HasBlob(b.Digest) {
			need += b.Size
		}
	}
	return d.s.EnsureSpace(ctx, need)
}

// PutBlob stores a blob after checking its digest and size; a layer blob
// is decompressed as it streams in and the digest of its tar noted.
func (d *ImageDestination) PutBlob(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	if err := d.s.EnsureSpace(ctx, desc.Size); err != nil {
		return err
	}
	if desc.Size > 0 {
		r = io.LimitReader(r, desc.Size+1)
	}
	var (
		got     digest.Digest
		n       int64
		content layerContent
		err     error
	)
	if isConfigType(desc.MediaType) {
		got, n, err = d.s.PutBlob(ctx, desc.Digest, r)
	} else {
		got, n, content, err = d.s.putLayerBlob(ctx, desc.Digest, r)
	}
	if err == nil && desc.Size > 0 && n != desc.Size {
		err = fmt.Errorf("blob %s: %w (size %d, want %d)", desc.Digest, ErrDigestMismatch, n, desc.Size)
	}
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.written = append(d.written, got)
	if content.diffID != "" {
		d.contents[got] = content
	}
	return nil
}

func isConfigType(mt string) bool {
	return mt == image.MediaTypeOCIConfig || mt == image.MediaTypeDockerConfig
}

// putLayerBlob stores a layer blob that must hash to want (any digest
// when empty) and returns, from the same pass, what it decompresses to.
// The tar is checked as it streams (archive.ScanLayer): a layer that is
// not a tar, claims more space than the store has, or hides data after
// its end stops the write at once and nothing is stored.
func (s *Store) putLayerBlob(ctx context.Context, want digest.Digest, r io.Reader) (digest.Digest, int64, layerContent, error) {
	var room int64
	if free, _, minFree, err := s.FreeSpace(); err == nil && free > minFree {
		room = free - minFree
	}
	tar := newTarHasher(room)
	got, n, err := s.PutBlob(ctx, want, io.TeeReader(r, tar))
	c, terr := tar.finish(got, n, err)
	if err != nil {
		return "", 0, c, err // a blob that is not what it claims says so first
	}
	if terr != nil {
		s.removeUnusedBlobs(ctx, []digest.Digest{got})
		return "", 0, c, fmt.Errorf("layer %s: %w", got, terr)
	}
	return got, n, c, nil
}

// tarHasher decompresses what is written to it, whatever the
// compression, checks the tar that comes out and hashes it.
type tarHasher struct {
	pw   *io.PipeWriter
	done chan tarResult
}

type tarResult struct {
	c   layerContent
	err error
}

func newTarHasher(room int64) *tarHasher {
	pr, pw := io.Pipe()
	t := &tarHasher{pw: pw, done: make(chan tarResult, 1)}
	go func() {
		var res tarResult
		rc, comp, err := archive.Decompress(pr)
		if err == nil {
			h := newCountingHash()
			_, err = archive.ScanLayer(io.TeeReader(rc, h), room)
			rc.Close()
			res.c = layerContent{diffID: h.digest(), size: h.n}
			if comp == archive.Uncompressed {
				res.c.diffID = "-" // the blob is the tar: its own digest
			}
		}
		res.err = err
		// The rest of the blob is stored all the same (its digest is
		// checked to its end) but no longer decompressed.
		_, _ = io.Copy(io.Discard, pr)
		t.done <- res
	}()
	return t
}

// Write passes the blob's bytes to the checker; it never fails.
func (t *tarHasher) Write(p []byte) (int, error) {
	_, _ = t.pw.Write(p)
	return len(p), nil
}

// finish waits for the check and the tar's digest; blob and n are the
// stored blob's, err the write's.
func (t *tarHasher) finish(blob digest.Digest, n int64, err error) (layerContent, error) {
	if err != nil {
		t.pw.CloseWithError(err)
	} else {
		t.pw.Close()
	}
	res := <-t.done
	if res.c.diffID == "-" {
		res.c = layerContent{diffID: blob, size: n}
	}
	return res.c, res.err
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

// Commit checks every layer against the config's diff IDs, records the
// layers and the image under its names.
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
		c, err := d.content(ctx, desc)
		if err != nil {
			return fmt.Errorf("layer %d (%s): %w", i+1, desc.Digest, err)
		}
		if want := cfg.RootFS.DiffIDs[i]; c.diffID != want {
			return fmt.Errorf("layer %d (%s): %w: the image config says its tar is %s, the blob holds %s", i+1, desc.Digest, ErrDigestMismatch, want, c.diffID)
		}
		l, err := d.s.AddBlobLayer(ctx, top, c.diffID, c.size, LayerBlob{Digest: desc.Digest, MediaType: desc.MediaType, Size: desc.Size})
		if err != nil {
			return err
		}
		d.held = append(d.held, l.ID)
		top = l.ID
	}
	created := cfg.Created
	if created == nil {
		created = new(time.Time)
	}
	d.img, err = d.s.CreateImage(ctx, NewImage{TopLayer: top, Config: rawCfg, Manifest: d.manifest, MediaType: d.mt, Names: d.names, Created: *created})
	if err != nil {
		return err
	}
	d.committed = true
	if sigs, ok := d.signatures[d.img.ManifestDigest]; ok {
		if err := d.s.SetSignatures(ctx, d.img.ManifestDigest, sigs); err != nil {
			return err
		}
	}
	return d.s.Release(ctx, d.held...)
}

// content returns what a layer blob holds: noted as it arrived, known
// from a layer already stored, or read again from the stored blob.
func (d *ImageDestination) content(ctx context.Context, desc ocispec.Descriptor) (layerContent, error) {
	d.mu.Lock()
	c, ok := d.contents[desc.Digest]
	d.mu.Unlock()
	if ok {
		return c, nil
	}
	err := d.s.db.sql.QueryRowContext(ctx, `SELECT l.diff_id, l.size FROM layer_blobs b JOIN layers l ON l.id = b.layer_id
		WHERE b.digest=? AND l.state='complete' LIMIT 1`, desc.Digest).Scan(&c.diffID, &c.size)
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return c, err
	}
	f, err := d.s.OpenBlob(desc.Digest)
	if err != nil {
		return c, err
	}
	defer f.Close()
	rc, err := uncompressed(ctxReader{ctx, f})
	if err != nil {
		return c, err
	}
	defer rc.Close()
	h := newCountingHash()
	if _, err := io.Copy(h, rc); err != nil {
		return c, fmt.Errorf("decompressing: %w", err)
	}
	return layerContent{diffID: h.digest(), size: h.n}, nil
}

// Image is the image Commit recorded.
func (d *ImageDestination) Image() Image { return d.img }

// Close ends the copy. After a copy that was not committed, it takes back
// what the copy wrote: its holds on layers, the layers nothing else
// uses, and the blobs nothing names.
func (d *ImageDestination) Close() error {
	if d.committed {
		return nil
	}
	ctx := context.Background()
	err := d.s.Release(ctx, d.held...)
	if len(d.held) > 0 {
		err = errors.Join(err, d.s.GC(ctx))
	}
	d.mu.Lock()
	written := d.written
	d.mu.Unlock()
	d.s.removeUnusedBlobs(ctx, written)
	return err
}
