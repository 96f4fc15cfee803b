package registry

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Source reads one image (or index) from a registry.
type Source struct {
	c   *Client
	ref name.Reference
}

// NewSource connects to the registry for pulling ref.
func NewSource(ctx context.Context, ref name.Reference, opts Options) (*Source, error) {
	c, err := NewClient(ctx, ref.Context(), []string{"pull"}, opts)
	if err != nil {
		return nil, err
	}
	return &Source{c: c, ref: ref}, nil
}

// Manifest returns the manifest of the reference, or of instance.
func (s *Source) Manifest(ctx context.Context, instance *digest.Digest) ([]byte, string, error) {
	id := s.ref.Identifier()
	if instance != nil {
		id = instance.String()
	}
	raw, mt, _, err := s.c.GetManifest(ctx, id)
	if err != nil {
		return nil, "", fmt.Errorf("reading manifest of %s: %w", s.ref, err)
	}
	return raw, mt, nil
}

// Blob opens a blob of the repository.
func (s *Source) Blob(ctx context.Context, d digest.Digest) (io.ReadCloser, int64, error) {
	return s.c.GetBlob(ctx, d)
}

// BlobRepository returns "registry/repository" of the source.
func (s *Source) BlobRepository() string { return s.c.repo.Name() }

// Close does nothing; idle connections are reused.
func (s *Source) Close() error { return nil }

// Destination writes one image (or index) to a registry. The tag (or
// digest) of the reference is written by Commit; child manifests of an
// index are uploaded by digest as they come.
type Destination struct {
	c   *Client
	ref name.Reference

	mu        sync.Mutex
	mountFrom []string
	top       []byte
	topType   string
}

// NewDestination connects to the registry for pushing ref.
func NewDestination(ctx context.Context, ref name.Reference, opts Options) (*Destination, error) {
	c, err := NewClient(ctx, ref.Context(), []string{"pull", "push"}, opts)
	if err != nil {
		return nil, err
	}
	return &Destination{c: c, ref: ref}, nil
}

// BlobRepository returns "registry/repository" the destination writes to.
func (d *Destination) BlobRepository() string { return d.c.repo.Name() }

// AddMountSource records a "registry/repository" that HasBlob may mount
// blobs from; repositories on other registries are ignored.
func (d *Destination) AddMountSource(repository string) {
	reg := d.c.repo.RegistryStr() + "/"
	if !strings.HasPrefix(repository, reg) || repository == d.c.repo.Name() {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.mountFrom = append(d.mountFrom, strings.TrimPrefix(repository, reg))
}

// HasBlob reports whether the repository has the blob, mounting it from a
// mount source when it can.
func (d *Destination) HasBlob(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	ok, err := d.c.HasBlob(ctx, desc.Digest)
	if err != nil || ok {
		return ok, err
	}
	d.mu.Lock()
	from := append([]string(nil), d.mountFrom...)
	d.mu.Unlock()
	for _, repo := range from {
		if ok, err := d.c.MountBlob(ctx, desc.Digest, repo); err == nil && ok {
			return true, nil
		}
	}
	return false, nil
}

// PutBlob uploads a blob, verifying it against desc as it streams.
func (d *Destination) PutBlob(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	return d.c.PutBlob(ctx, desc, r)
}

// PutManifest uploads a child manifest by digest at once, and keeps the
// top-level one for Commit.
func (d *Destination) PutManifest(ctx context.Context, raw []byte, mediaType string, instance *digest.Digest) error {
	if instance != nil {
		return d.c.PutManifest(ctx, instance.String(), raw, mediaType)
	}
	if dg, ok := d.ref.(name.Digest); ok {
		if got := digest.FromBytes(raw).String(); got != dg.DigestStr() {
			return fmt.Errorf("pushing %s: manifest digest %s does not match the reference", d.ref, got)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.top, d.topType = raw, mediaType
	return nil
}

// Commit uploads the top-level manifest under the reference's tag or digest.
func (d *Destination) Commit(ctx context.Context) error {
	d.mu.Lock()
	raw, mt := d.top, d.topType
	d.mu.Unlock()
	if raw == nil {
		return fmt.Errorf("pushing %s: no manifest to commit", d.ref)
	}
	return d.c.PutManifest(ctx, d.ref.Identifier(), raw, mt)
}

// Close does nothing.
func (d *Destination) Close() error { return nil }

// SupportedManifestTypes returns nil: registries accept every type.
func (d *Destination) SupportedManifestTypes() []string { return nil }

// Client returns the client of the source's repository (for reading
// what is stored beside the image: signature attachments, referrers).
func (s *Source) Client() *Client { return s.c }

// Client returns the client of the destination's repository.
func (d *Destination) Client() *Client { return d.c }
