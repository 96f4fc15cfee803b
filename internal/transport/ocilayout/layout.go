// Package ocilayout reads and writes OCI image layouts (oci:DIR[:REF]) and
// tar archives of them (oci-archive:FILE[:REF]), as the OCI image-spec
// defines them: an oci-layout file, index.json, and blobs/ALG/HEX. Images
// are named in index.json by the org.opencontainers.image.ref.name
// annotation.
package ocilayout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/kiln-build/kiln/internal/digestio"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ErrNoImage reports a layout without the requested image.
var ErrNoImage = errors.New("image not found in layout")

func blobPath(dir string, d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("blob %q: %w", d, err)
	}
	return filepath.Join(dir, ocispec.ImageBlobsDir, d.Algorithm().String(), d.Encoded()), nil
}

func readIndex(dir string) (*ocispec.Index, error) {
	f, err := os.Open(filepath.Join(dir, ocispec.ImageIndexFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := digestio.ReadDocument(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", f.Name(), err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", f.Name(), err)
	}
	return &idx, nil
}

// Source reads one image of a layout directory. It is safe for concurrent use.
type Source struct {
	dir  string
	desc ocispec.Descriptor
}

// NewSource opens the image named ref in the layout at dir; an empty ref
// selects the only image of the layout.
func NewSource(dir, ref string) (*Source, error) {
	idx, err := readIndex(dir)
	if err != nil {
		return nil, fmt.Errorf("opening oci:%s: %w", dir, err)
	}
	var found []ocispec.Descriptor
	for _, d := range idx.Manifests {
		if ref == "" || d.Annotations[ocispec.AnnotationRefName] == ref {
			found = append(found, d)
		}
	}
	switch {
	case len(found) == 0:
		return nil, fmt.Errorf("opening oci:%s:%s: %w", dir, ref, ErrNoImage)
	case len(found) > 1 && ref == "":
		return nil, fmt.Errorf("opening oci:%s: %d images in the layout, name one", dir, len(found))
	}
	return &Source{dir: dir, desc: found[len(found)-1]}, nil
}

// Descriptor returns the descriptor of the selected image in index.json.
func (s *Source) Descriptor() ocispec.Descriptor { return s.desc }

// Manifest returns the selected manifest, or the instance given.
func (s *Source) Manifest(ctx context.Context, instance *digest.Digest) ([]byte, string, error) {
	d, size, mt := s.desc.Digest, s.desc.Size, s.desc.MediaType
	if instance != nil {
		d, size, mt = *instance, -1, ""
	}
	rc, _, err := s.Blob(ctx, d)
	if err != nil {
		return nil, "", err
	}
	defer rc.Close()
	raw, err := digestio.ReadVerified(rc, d, size)
	if err != nil {
		return nil, "", fmt.Errorf("reading manifest %s in oci:%s: %w", d, s.dir, err)
	}
	if m := sniff(raw); m != "" {
		mt = m
	}
	return raw, mt, nil
}

func sniff(raw []byte) string {
	var probe struct {
		MediaType string          `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
		Config    json.RawMessage `json:"config"`
	}
	if json.Unmarshal(raw, &probe) != nil {
		return ""
	}
	switch {
	case probe.MediaType != "":
		return probe.MediaType
	case probe.Manifests != nil:
		return ocispec.MediaTypeImageIndex
	case probe.Config != nil:
		return ocispec.MediaTypeImageManifest
	}
	return ""
}

// Blob opens a blob of the layout.
func (s *Source) Blob(_ context.Context, d digest.Digest) (io.ReadCloser, int64, error) {
	p, err := blobPath(s.dir, d)
	if err != nil {
		return nil, 0, err
	}
	rc, size, err := digestio.OpenFile(p)
	if err != nil {
		return nil, 0, fmt.Errorf("opening blob %s in oci:%s: %w", d, s.dir, err)
	}
	return rc, size, nil
}

// Close does nothing.
func (s *Source) Close() error { return nil }

// Destination writes one image into a layout directory, creating it if
// needed. Commit adds it to index.json (replacing an image of the same
// name); blobs written before a failed Commit stay as unreferenced blobs.
type Destination struct {
	dir string
	ref string

	mu  sync.Mutex
	top *ocispec.Descriptor
}

// NewDestination prepares the layout at dir for writing image ref.
func NewDestination(dir, ref string) (*Destination, error) {
	if err := os.MkdirAll(filepath.Join(dir, ocispec.ImageBlobsDir, "sha256"), 0o755); err != nil {
		return nil, fmt.Errorf("creating oci:%s: %w", dir, err)
	}
	layout := filepath.Join(dir, ocispec.ImageLayoutFile)
	if _, err := os.Stat(layout); errors.Is(err, os.ErrNotExist) {
		b, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
		if err := digestio.WriteFileAtomic(layout, b, 0o600); err != nil {
			return nil, fmt.Errorf("creating oci:%s: %w", dir, err)
		}
	}
	return &Destination{dir: dir, ref: ref}, nil
}

// HasBlob reports whether the layout holds a blob of the right size.
func (d *Destination) HasBlob(_ context.Context, desc ocispec.Descriptor) (bool, error) {
	p, err := blobPath(d.dir, desc.Digest)
	if err != nil {
		return false, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return false, nil
	}
	return desc.Size < 0 || fi.Size() == desc.Size, nil
}

// PutBlob writes a blob atomically after verifying it.
func (d *Destination) PutBlob(_ context.Context, desc ocispec.Descriptor, r io.Reader) error {
	p, err := blobPath(d.dir, desc.Digest)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := digestio.WriteBlob(p, r, desc.Digest, desc.Size); err != nil {
		return fmt.Errorf("writing blob %s to oci:%s: %w", desc.Digest, d.dir, err)
	}
	return nil
}

// PutManifest writes a manifest as a blob; the top-level one is recorded
// for Commit.
func (d *Destination) PutManifest(ctx context.Context, raw []byte, mediaType string, instance *digest.Digest) error {
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	if err := d.PutBlob(ctx, desc, bytes.NewReader(raw)); err != nil {
		return err
	}
	if instance == nil {
		d.mu.Lock()
		d.top = &desc
		d.mu.Unlock()
	}
	return nil
}

// Commit adds the image to index.json.
func (d *Destination) Commit(context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.top == nil {
		return fmt.Errorf("committing oci:%s: no manifest written", d.dir)
	}
	idx, err := readIndex(d.dir)
	if errors.Is(err, os.ErrNotExist) {
		idx, err = &ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}, nil
	}
	if err != nil {
		return fmt.Errorf("committing oci:%s: %w", d.dir, err)
	}
	desc := *d.top
	kept := idx.Manifests[:0]
	for _, m := range idx.Manifests {
		name := m.Annotations[ocispec.AnnotationRefName]
		if d.ref != "" && name == d.ref || d.ref == "" && name == "" && m.Digest == desc.Digest {
			continue
		}
		kept = append(kept, m)
	}
	if d.ref != "" {
		desc.Annotations = map[string]string{ocispec.AnnotationRefName: d.ref}
	}
	idx.Manifests = append(kept, desc)
	b, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	return digestio.WriteFileAtomic(filepath.Join(d.dir, ocispec.ImageIndexFile), b, 0o600)
}

// Close does nothing.
func (d *Destination) Close() error { return nil }

// SupportedManifestTypes returns the OCI manifest and index types.
func (d *Destination) SupportedManifestTypes() []string {
	return []string{ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex}
}
