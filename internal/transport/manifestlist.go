package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/kiln-build/kiln/internal/digestio"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// NewIndex returns an empty OCI image index and its media type.
func NewIndex() ([]byte, string) {
	raw, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}})
	return raw, ocispec.MediaTypeImageIndex
}

// ListInstances returns the descriptors to put in a manifest list for
// the image of src: for a single image, its manifest with the platform
// of its config; for an index, the instance matching p (zero: this
// machine), or every instance when all is true.
func ListInstances(ctx context.Context, src Source, p Platform, all bool) ([]ocispec.Descriptor, error) {
	raw, mt, err := src.Manifest(ctx, nil)
	if err != nil {
		return nil, err
	}
	if err := digestio.VerifyDocument(raw, ""); err != nil {
		return nil, err
	}
	mt = documentType(raw, mt)
	if image.IsIndex(mt) {
		idx, err := parseIndex(raw)
		if err != nil {
			return nil, err
		}
		if all {
			return idx.Manifests, nil
		}
		o := CopyOptions{Platform: p}
		desc, err := MatchPlatform(idx, o.platform())
		if err != nil {
			return nil, err
		}
		return []ocispec.Descriptor{desc}, nil
	}
	img, err := ReadImage(ctx, src, p)
	if err != nil {
		return nil, err
	}
	c := img.Config
	return []ocispec.Descriptor{{
		MediaType: mt, Digest: digest.FromBytes(raw), Size: int64(len(raw)),
		Platform: &ocispec.Platform{OS: c.OS, Architecture: c.Architecture, Variant: c.Variant, OSVersion: c.OSVersion, OSFeatures: c.OSFeatures},
	}}, nil
}

// documentType returns mt, or when a source did not say, the mediaType
// field of the document (an OCI manifest when it has none).
func documentType(raw []byte, mt string) string {
	if mt != "" {
		return mt
	}
	var probe struct {
		MediaType string          `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
	}
	if json.Unmarshal(raw, &probe) == nil {
		switch {
		case probe.MediaType != "":
			return probe.MediaType
		case probe.Manifests != nil:
			return ocispec.MediaTypeImageIndex
		}
	}
	return ocispec.MediaTypeImageManifest
}

// EditIndex parses an index, lets edit change its list of instances, and
// returns the index written again (media type and annotations kept).
func EditIndex(raw []byte, edit func([]ocispec.Descriptor) ([]ocispec.Descriptor, error)) ([]byte, error) {
	idx, err := parseIndex(raw)
	if err != nil {
		return nil, err
	}
	if idx.Manifests, err = edit(idx.Manifests); err != nil {
		return nil, err
	}
	if idx.Manifests == nil {
		idx.Manifests = []ocispec.Descriptor{}
	}
	for _, m := range idx.Manifests {
		if err := m.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("instance %q: %w", m.Digest, err)
		}
	}
	return json.Marshal(idx)
}

// AddInstances returns instances with descs added; an instance with the
// digest of one of descs is replaced in place.
func AddInstances(instances []ocispec.Descriptor, descs ...ocispec.Descriptor) []ocispec.Descriptor {
	for _, d := range descs {
		i := slices.IndexFunc(instances, func(m ocispec.Descriptor) bool { return m.Digest == d.Digest })
		if i >= 0 {
			instances[i] = d
		} else {
			instances = append(instances, d)
		}
	}
	return instances
}

// ErrNoInstance reports a digest a manifest list does not list.
var ErrNoInstance = errors.New("manifest list has no such instance")

// RemoveInstance returns instances without the one with digest d.
func RemoveInstance(instances []ocispec.Descriptor, d digest.Digest) ([]ocispec.Descriptor, error) {
	i := slices.IndexFunc(instances, func(m ocispec.Descriptor) bool { return m.Digest == d })
	if i < 0 {
		return nil, fmt.Errorf("%w: %s", ErrNoInstance, d)
	}
	return slices.Delete(instances, i, i+1), nil
}

// ListSource is a Source for a manifest list kept elsewhere (in the
// store): the index is given, and each instance with its blobs is read
// from the Source open returns for its digest. It is safe for concurrent
// use; each instance's source is opened once and closed by Close.
type ListSource struct {
	index []byte
	mt    string
	open  func(ctx context.Context, instance digest.Digest) (Source, error)

	mu      sync.Mutex
	sources map[digest.Digest]Source
	blobs   map[digest.Digest]Source
}

var _ Source = (*ListSource)(nil)

// NewListSource returns the source of index (of media type mt).
func NewListSource(index []byte, mt string, open func(ctx context.Context, instance digest.Digest) (Source, error)) *ListSource {
	return &ListSource{index: index, mt: mt, open: open, sources: map[digest.Digest]Source{}, blobs: map[digest.Digest]Source{}}
}

// Manifest returns the index, or the manifest of one instance (read from
// its source, as that source's top-level manifest or its instance).
func (s *ListSource) Manifest(ctx context.Context, instance *digest.Digest) ([]byte, string, error) {
	if instance == nil {
		return s.index, s.mt, nil
	}
	src, err := s.instanceSource(ctx, *instance)
	if err != nil {
		return nil, "", err
	}
	raw, mt, err := src.Manifest(ctx, nil)
	if err == nil && digest.FromBytes(raw) != *instance {
		raw, mt, err = src.Manifest(ctx, instance)
	}
	if err != nil {
		return nil, "", fmt.Errorf("reading instance %s: %w", *instance, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, "", fmt.Errorf("parsing instance %s: %w", *instance, err)
	}
	s.mu.Lock()
	for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		s.blobs[d.Digest] = src
	}
	s.mu.Unlock()
	return raw, documentType(raw, mt), nil
}

func (s *ListSource) instanceSource(ctx context.Context, d digest.Digest) (Source, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if src, ok := s.sources[d]; ok {
		return src, nil
	}
	src, err := s.open(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("opening instance %s: %w", d, err)
	}
	s.sources[d] = src
	return src, nil
}

// Blob opens a blob of an instance whose manifest was read before.
func (s *ListSource) Blob(ctx context.Context, d digest.Digest) (io.ReadCloser, int64, error) {
	s.mu.Lock()
	src, ok := s.blobs[d]
	s.mu.Unlock()
	if !ok {
		return nil, 0, fmt.Errorf("blob %s: no instance read so far uses it", d)
	}
	return src.Blob(ctx, d)
}

// Close closes every instance source opened.
func (s *ListSource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, src := range s.sources {
		errs = append(errs, src.Close())
	}
	clear(s.sources)
	return errors.Join(errs...)
}
