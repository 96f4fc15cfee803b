// Package dir reads and writes the dir: transport of containers/image
// (skopeo's format): a "version" file, manifest.json, each blob stored under
// its hex digest, and for the instances of an index HEX.manifest.json.
package dir

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kiln-build/kiln/internal/digestio"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Version is the content of the version file skopeo writes and checks.
const Version = "Directory Transport Version: 1.1\n"

func blobPath(dir string, d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("blob %q: %w", d, err)
	}
	if d.Algorithm() == digest.SHA256 {
		return filepath.Join(dir, d.Encoded()), nil
	}
	return filepath.Join(dir, d.Algorithm().String()+"-"+d.Encoded()), nil
}

func manifestPath(dir string, instance *digest.Digest) (string, error) {
	if instance == nil {
		return filepath.Join(dir, "manifest.json"), nil
	}
	p, err := blobPath(dir, *instance)
	return p + ".manifest.json", err
}

// Source reads an image from a dir: directory.
type Source struct{ dir string }

// NewSource opens the directory, checking its version file.
func NewSource(dir string) (*Source, error) {
	v, err := os.ReadFile(filepath.Join(dir, "version"))
	if err != nil {
		return nil, fmt.Errorf("opening dir:%s: %w", dir, err)
	}
	if !strings.HasPrefix(string(v), "Directory Transport Version: 1.") {
		return nil, fmt.Errorf("opening dir:%s: unsupported version %q", dir, strings.TrimSpace(string(v)))
	}
	return &Source{dir: dir}, nil
}

// Manifest returns manifest.json, or the manifest of instance.
func (s *Source) Manifest(_ context.Context, instance *digest.Digest) ([]byte, string, error) {
	p, err := manifestPath(s.dir, instance)
	if err != nil {
		return nil, "", err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, "", fmt.Errorf("reading manifest of dir:%s: %w", s.dir, err)
	}
	defer f.Close()
	raw, err := digestio.ReadDocument(f)
	if err == nil && instance != nil {
		err = digestio.VerifyDocument(raw, *instance)
	}
	if err != nil {
		return nil, "", fmt.Errorf("reading manifest of dir:%s: %w", s.dir, err)
	}
	return raw, sniff(raw), nil
}

func sniff(raw []byte) string {
	var probe struct {
		MediaType string          `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
	}
	if json.Unmarshal(raw, &probe) != nil {
		return ""
	}
	if probe.MediaType != "" {
		return probe.MediaType
	}
	if probe.Manifests != nil {
		return ocispec.MediaTypeImageIndex
	}
	return ocispec.MediaTypeImageManifest
}

// Blob opens a blob.
func (s *Source) Blob(_ context.Context, d digest.Digest) (io.ReadCloser, int64, error) {
	p, err := blobPath(s.dir, d)
	if err != nil {
		return nil, 0, err
	}
	rc, size, err := digestio.OpenFile(p)
	if err != nil {
		return nil, 0, fmt.Errorf("opening blob %s in dir:%s: %w", d, s.dir, err)
	}
	return rc, size, nil
}

// Close does nothing.
func (s *Source) Close() error { return nil }

// Destination writes an image into a directory, which it empties of a
// previous dir: image first. manifest.json is written last, by Commit.
type Destination struct {
	dir string
	top []byte
}

// NewDestination prepares dir (created if missing) for writing.
func NewDestination(dir string) (*Destination, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating dir:%s: %w", dir, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	if len(entries) > 0 {
		if _, err := os.Stat(filepath.Join(dir, "version")); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("writing dir:%s: directory is not empty and not a dir: image", dir)
		}
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return nil, err
			}
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "version"), []byte(Version), 0o644); err != nil {
		return nil, err
	}
	return &Destination{dir: dir}, nil
}

// HasBlob reports whether the blob file exists with the right size.
func (d *Destination) HasBlob(_ context.Context, desc ocispec.Descriptor) (bool, error) {
	p, err := blobPath(d.dir, desc.Digest)
	if err != nil {
		return false, err
	}
	fi, err := os.Stat(p)
	return err == nil && (desc.Size < 0 || fi.Size() == desc.Size), nil
}

// PutBlob writes a verified blob.
func (d *Destination) PutBlob(_ context.Context, desc ocispec.Descriptor, r io.Reader) error {
	p, err := blobPath(d.dir, desc.Digest)
	if err != nil {
		return err
	}
	if err := digestio.WriteBlob(p, r, desc.Digest, desc.Size); err != nil {
		return fmt.Errorf("writing blob %s to dir:%s: %w", desc.Digest, d.dir, err)
	}
	return nil
}

// PutManifest writes an instance manifest at once and keeps the top-level
// one for Commit.
func (d *Destination) PutManifest(_ context.Context, raw []byte, _ string, instance *digest.Digest) error {
	if instance == nil {
		d.top = raw
		return nil
	}
	p, err := manifestPath(d.dir, instance)
	if err != nil {
		return err
	}
	return digestio.WriteBlob(p, bytes.NewReader(raw), *instance, int64(len(raw)))
}

// Commit writes manifest.json.
func (d *Destination) Commit(context.Context) error {
	if d.top == nil {
		return fmt.Errorf("committing dir:%s: no manifest written", d.dir)
	}
	return digestio.WriteFileAtomic(filepath.Join(d.dir, "manifest.json"), d.top, 0o600)
}

// Close does nothing.
func (d *Destination) Close() error { return nil }

// SupportedManifestTypes returns nil: a directory holds any manifest.
func (d *Destination) SupportedManifestTypes() []string { return nil }
