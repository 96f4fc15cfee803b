// Package dockerarchive reads and writes the tar archives of `docker save`
// and `docker load` (docker-archive:FILE[:NAME:TAG]): manifest.json,
// repositories, the image config as HEX.json and each layer as an
// uncompressed tar. Reading presents the image as a Docker schema 2
// manifest whose layer digests are the layers' diff IDs.
package dockerarchive

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/kiln-build/kiln/internal/digestio"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	manifestFile           = "manifest.json"
	maxSymlinkIndirections = 8
)

// ManifestEntry is one image of manifest.json.
type ManifestEntry struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

type entry struct {
	offset, size int64
	link         string
}

// Source reads one image of a docker-archive file. It is safe for
// concurrent use.
type Source struct {
	f        *os.File
	file     string
	entries  map[string]entry
	manifest []byte
	blobs    map[digest.Digest]string
	tags     []string
}

// NewSource opens the archive and selects the image tagged tag (any form
// docker uses in RepoTags), or the only image when tag is empty.
func NewSource(file, tag string) (*Source, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("opening docker-archive:%s: %w", file, err)
	}
	s := &Source{f: f, file: file, entries: map[string]entry{}, blobs: map[digest.Digest]string{}}
	if err := s.load(tag); err != nil {
		f.Close()
		return nil, fmt.Errorf("opening docker-archive:%s: %w", file, err)
	}
	return s, nil
}

func (s *Source) load(tag string) error {
	if err := s.index(); err != nil {
		return err
	}
	raw, err := s.readDoc(manifestFile)
	if err != nil {
		return err
	}
	var entries []ManifestEntry
	if err := json.Unmarshal(raw, &entries); err != nil {
		return fmt.Errorf("parsing manifest.json: %w", err)
	}
	e, err := pick(entries, tag)
	if err != nil {
		return err
	}
	s.tags = e.RepoTags
	return s.buildManifest(e)
}

// index records where each file of the archive is.
func (s *Source) index() error {
	cr := &countingReader{r: s.f}
	tr := tar.NewReader(cr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading archive: %w", err)
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		switch h.Typeflag {
		case tar.TypeReg:
			s.entries[name] = entry{offset: cr.n, size: h.Size}
		case tar.TypeSymlink:
			s.entries[name] = entry{link: path.Join(path.Dir(name), h.Linkname)}
		}
	}
}

type countingReader struct {
	r io.ReadSeeker
	n int64
}

// Seek lets archive/tar skip file contents without reading them.
func (c *countingReader) Seek(off int64, whence int) (int64, error) {
	n, err := c.r.Seek(off, whence)
	if err == nil {
		c.n = n
	}
	return n, err
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func pick(entries []ManifestEntry, tag string) (ManifestEntry, error) {
	if tag == "" {
		if len(entries) != 1 {
			return ManifestEntry{}, fmt.Errorf("archive holds %d images, name one", len(entries))
		}
		return entries[0], nil
	}
	for _, e := range entries {
		for _, t := range e.RepoTags {
			if t == tag || NormalizeTag(t) == NormalizeTag(tag) {
				return e, nil
			}
		}
	}
	return ManifestEntry{}, fmt.Errorf("no image tagged %q in the archive", tag)
}

// NormalizeTag turns a short name such as "busybox" into
// "docker.io/library/busybox:latest" for comparison; a string that is no
// image name is returned as it is.
func NormalizeTag(t string) string {
	r, err := image.ParseReference(t)
	if err != nil {
		return t
	}
	return r.DockerNormalized().String()
}

func (s *Source) open(name string) (*io.SectionReader, error) {
	name = path.Clean(name)
	for range maxSymlinkIndirections {
		e, ok := s.entries[name]
		if !ok {
			return nil, fmt.Errorf("%s: %w", name, os.ErrNotExist)
		}
		if e.link == "" {
			return io.NewSectionReader(s.f, e.offset, e.size), nil
		}
		name = e.link
	}
	return nil, fmt.Errorf("%s: too many symbolic links", name)
}

func (s *Source) readDoc(name string) ([]byte, error) {
	r, err := s.open(name)
	if err != nil {
		return nil, err
	}
	return digestio.ReadDocument(r)
}

// buildManifest makes the schema 2 manifest for entry e.
func (s *Source) buildManifest(e ManifestEntry) error {
	cfg, err := s.readDoc(e.Config)
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	var img ocispec.Image
	if err := json.Unmarshal(cfg, &img); err != nil {
		return fmt.Errorf("parsing config: %w", err)
	}
	if len(img.RootFS.DiffIDs) != len(e.Layers) {
		return fmt.Errorf("config lists %d diff IDs for %d layers", len(img.RootFS.DiffIDs), len(e.Layers))
	}
	cd := digest.FromBytes(cfg)
	s.blobs[cd] = e.Config
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: image.MediaTypeDockerManifest,
		Config:    ocispec.Descriptor{MediaType: image.MediaTypeDockerConfig, Digest: cd, Size: int64(len(cfg))},
	}
	for i, l := range e.Layers {
		desc, err := s.layerDescriptor(l, img.RootFS.DiffIDs[i])
		if err != nil {
			return err
		}
		s.blobs[desc.Digest] = l
		m.Layers = append(m.Layers, desc)
	}
	s.manifest, err = json.Marshal(m)
	return err
}

// layerDescriptor describes a layer file: an uncompressed one by its diff
// ID, a compressed one by the digest of its bytes.
func (s *Source) layerDescriptor(name string, diffID digest.Digest) (ocispec.Descriptor, error) {
	r, err := s.open(name)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("reading layer: %w", err)
	}
	var magic [4]byte
	n, _ := r.ReadAt(magic[:], 0)
	mt := image.MediaTypeDockerLayer
	switch {
	case n >= 2 && bytes.Equal(magic[:2], []byte{0x1f, 0x8b}):
		mt = image.MediaTypeDockerLayerGz
	case n == 4 && bytes.Equal(magic[:], []byte{0x28, 0xb5, 0x2f, 0xfd}):
		mt = image.MediaTypeDockerLayerZst
	}
	d := diffID
	if mt != image.MediaTypeDockerLayer {
		dg := digest.SHA256.Digester()
		if _, err := io.Copy(dg.Hash(), io.NewSectionReader(r, 0, r.Size())); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("hashing layer %s: %w", name, err)
		}
		d = dg.Digest()
	}
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: r.Size()}, nil
}

// RepoTags returns the tags of the selected image.
func (s *Source) RepoTags() []string { return s.tags }

// Manifest returns the schema 2 manifest of the image; archives hold no
// indexes.
func (s *Source) Manifest(_ context.Context, instance *digest.Digest) ([]byte, string, error) {
	if instance != nil && *instance != digest.FromBytes(s.manifest) {
		return nil, "", fmt.Errorf("docker-archive:%s: no manifest %s", s.file, *instance)
	}
	return s.manifest, image.MediaTypeDockerManifest, nil
}

// Blob opens the config or a layer.
func (s *Source) Blob(_ context.Context, d digest.Digest) (io.ReadCloser, int64, error) {
	name, ok := s.blobs[d]
	if !ok {
		return nil, 0, fmt.Errorf("docker-archive:%s: no blob %s", s.file, d)
	}
	r, err := s.open(name)
	if err != nil {
		return nil, 0, err
	}
	return io.NopCloser(r), r.Size(), nil
}

// Close closes the archive file.
func (s *Source) Close() error { return s.f.Close() }
