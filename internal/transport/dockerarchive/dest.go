package dockerarchive

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/kiln-build/kiln/internal/digestio"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Destination writes one image as a docker-archive. Blobs are staged in a
// temporary directory (layers decompressed, as docker load wants them);
// Commit writes manifest.json and repositories and streams the archive to
// its writer. It accepts Docker schema 2 manifests only.
type Destination struct {
	tmp   string
	tags  []string
	write func(fill func(io.Writer) error) error
	done  func() error

	mu    sync.Mutex
	files map[digest.Digest]string
	top   []byte
}

// NewDestination prepares writing an image tagged tags (may be empty) to
// the archive file, replaced atomically on Commit.
func NewDestination(file string, tags []string, tmpDir string) (*Destination, error) {
	return newDestination(tags, tmpDir, func(fill func(io.Writer) error) error {
		return digestio.WriteAtomic(file, 0o600, fill)
	})
}

// NewStreamDestination is like NewDestination but writes the archive, on
// Commit, to the writer open returns (closed after writing).
func NewStreamDestination(tags []string, tmpDir string, open func() (io.WriteCloser, error)) (*Destination, error) {
	return newDestination(tags, tmpDir, func(fill func(io.Writer) error) error {
		w, err := open()
		if err != nil {
			return err
		}
		err = fill(w)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		return err
	})
}

func newDestination(tags []string, tmpDir string, write func(fill func(io.Writer) error) error) (*Destination, error) {
	tmp, err := os.MkdirTemp(tmpDir, "kiln-docker-archive-")
	if err != nil {
		return nil, err
	}
	return &Destination{tmp: tmp, tags: tags, write: write, files: map[digest.Digest]string{}}, nil
}

// SetDone sets a function Commit calls after the archive is written and
// closed; its error fails the Commit.
func (d *Destination) SetDone(f func() error) { d.done = f }

// HasBlob reports whether the blob was already staged.
func (d *Destination) HasBlob(_ context.Context, desc ocispec.Descriptor) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.files[desc.Digest]
	return ok, nil
}

// PutBlob verifies and stages a blob; a compressed layer is stored
// decompressed under its diff ID.
func (d *Destination) PutBlob(_ context.Context, desc ocispec.Descriptor, r io.Reader) error {
	v, err := digestio.NewVerifier(r, desc.Digest, desc.Size)
	if err != nil {
		return err
	}
	name, err := d.stage(desc, v)
	if err != nil {
		return fmt.Errorf("staging blob %s for docker-archive: %w", desc.Digest, err)
	}
	if !v.Verified() {
		// Drain to make the verifier check the end of the stream.
		if _, err := io.Copy(io.Discard, v); err != nil {
			os.Remove(filepath.Join(d.tmp, name))
			return fmt.Errorf("staging blob %s for docker-archive: %w", desc.Digest, err)
		}
	}
	d.mu.Lock()
	d.files[desc.Digest] = name
	d.mu.Unlock()
	return nil
}

func (d *Destination) stage(desc ocispec.Descriptor, r io.Reader) (string, error) {
	f, err := os.CreateTemp(d.tmp, "blob-")
	if err != nil {
		return "", err
	}
	defer f.Close()
	dr, err := decompressor(desc.MediaType, r)
	if err != nil {
		return "", err
	}
	defer dr.Close()
	dg := digest.SHA256.Digester()
	if _, err := io.Copy(io.MultiWriter(f, dg.Hash()), dr); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	ext := ".tar"
	if isConfig(desc.MediaType) {
		ext = ".json"
	}
	name := dg.Digest().Encoded() + ext
	return name, os.Rename(f.Name(), filepath.Join(d.tmp, name))
}

func isConfig(mt string) bool {
	return mt == image.MediaTypeDockerConfig || mt == image.MediaTypeOCIConfig
}

func decompressor(mt string, r io.Reader) (io.ReadCloser, error) {
	switch image.LayerCompression(mt) {
	case "gzip":
		return pgzip.NewReader(r)
	case "zstd":
		zr, err := zstd.NewReader(r)
		if err != nil {
			return nil, err
		}
		return zr.IOReadCloser(), nil
	}
	return io.NopCloser(r), nil
}

// PutManifest keeps the top-level manifest for Commit.
func (d *Destination) PutManifest(_ context.Context, raw []byte, mediaType string, instance *digest.Digest) error {
	if instance != nil {
		return fmt.Errorf("docker-archive cannot hold an index: %w", errIndex)
	}
	if mediaType != image.MediaTypeDockerManifest {
		return fmt.Errorf("docker-archive accepts Docker schema 2 manifests, not %s", mediaType)
	}
	d.top = raw
	return nil
}

var errIndex = fmt.Errorf("manifest lists are not supported")

// Commit writes the archive.
func (d *Destination) Commit(context.Context) error {
	if d.top == nil {
		return fmt.Errorf("committing docker-archive: no manifest written")
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(d.top, &m); err != nil {
		return fmt.Errorf("committing docker-archive: %w", err)
	}
	entry, err := d.entry(m)
	if err != nil {
		return fmt.Errorf("committing docker-archive: %w", err)
	}
	err = d.write(func(w io.Writer) error { return d.writeTar(w, entry) })
	if err == nil && d.done != nil {
		err = d.done()
	}
	if err != nil {
		return fmt.Errorf("writing docker-archive: %w", err)
	}
	return nil
}

func (d *Destination) entry(m ocispec.Manifest) (ManifestEntry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := ManifestEntry{RepoTags: d.tags, Config: d.files[m.Config.Digest]}
	if e.Config == "" {
		return e, fmt.Errorf("config %s was not written", m.Config.Digest)
	}
	if e.RepoTags == nil {
		e.RepoTags = []string{}
	}
	for _, l := range m.Layers {
		name := d.files[l.Digest]
		if name == "" {
			return e, fmt.Errorf("layer %s was not written", l.Digest)
		}
		e.Layers = append(e.Layers, name)
	}
	return e, nil
}

func (d *Destination) writeTar(w io.Writer, e ManifestEntry) error {
	tw := tar.NewWriter(w)
	seen := map[string]bool{}
	for _, name := range append([]string{e.Config}, e.Layers...) {
		if seen[name] {
			continue
		}
		seen[name] = true
		if err := addFile(tw, name, filepath.Join(d.tmp, name)); err != nil {
			return err
		}
	}
	mj, _ := json.Marshal([]ManifestEntry{e})
	if err := addBytes(tw, manifestFile, mj); err != nil {
		return err
	}
	return tw.Close()
}

func addFile(tw *tar.Writer, name, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: fi.Size(), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

func addBytes(tw *tar.Writer, name string, b []byte) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err := io.Copy(tw, bytes.NewReader(b))
	return err
}

// Close removes the staging directory.
func (d *Destination) Close() error { return os.RemoveAll(d.tmp) }

// SupportedManifestTypes returns the Docker schema 2 manifest type only.
func (d *Destination) SupportedManifestTypes() []string {
	return []string{image.MediaTypeDockerManifest}
}
