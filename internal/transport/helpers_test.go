package transport

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/transport/transporttest"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// memSource is an in-memory image: a manifest and its blobs.
type memSource struct {
	manifest  []byte
	mediaType string
	children  map[digest.Digest][]byte
	blobs     map[digest.Digest][]byte
}

func (m *memSource) Manifest(_ context.Context, instance *digest.Digest) ([]byte, string, error) {
	if instance != nil {
		raw, ok := m.children[*instance]
		if !ok {
			return nil, "", fmt.Errorf("no instance %s", *instance)
		}
		return raw, ocispec.MediaTypeImageManifest, nil
	}
	return m.manifest, m.mediaType, nil
}

func (m *memSource) Blob(_ context.Context, d digest.Digest) (io.ReadCloser, int64, error) {
	b, ok := m.blobs[d]
	if !ok {
		return nil, 0, fmt.Errorf("no blob %s", d)
	}
	return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
}

func (m *memSource) Close() error { return nil }

// layerTar returns an uncompressed tar with one random file.
func layerTar(t *testing.T, size int) []byte {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	name := fmt.Sprintf("file-%x", data[:4])
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	tw.Write(data)
	tw.Close()
	return buf.Bytes()
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// testImage builds an OCI image with n gzip layers for amd64 or arch.
func testImage(t *testing.T, n int, arch string) *memSource {
	t.Helper()
	src := &memSource{blobs: map[digest.Digest][]byte{}, mediaType: ocispec.MediaTypeImageManifest}
	created := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	cfg := ocispec.Image{
		Created:  &created,
		Platform: ocispec.Platform{OS: "linux", Architecture: arch},
		Config:   ocispec.ImageConfig{Env: []string{"PATH=/bin"}, Labels: map[string]string{"kiln.test": "yes"}},
		RootFS:   ocispec.RootFS{Type: "layers"},
	}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest}
	for range n {
		tb := layerTar(t, 2048)
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(tb))
		lb := gz(tb)
		d := digest.FromBytes(lb)
		src.blobs[d] = lb
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: d, Size: int64(len(lb))})
	}
	cb, _ := json.Marshal(cfg)
	src.blobs[digest.FromBytes(cb)] = cb
	m.Config = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cb), Size: int64(len(cb))}
	src.manifest, _ = json.Marshal(m)
	return src
}

// testIndex builds an OCI index of an amd64 and an arm64 image.
func testIndex(t *testing.T) *memSource {
	t.Helper()
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	src := &memSource{blobs: map[digest.Digest][]byte{}, children: map[digest.Digest][]byte{}, mediaType: ocispec.MediaTypeImageIndex}
	for _, arch := range []string{"amd64", "arm64"} {
		img := testImage(t, 1, arch)
		for d, b := range img.blobs {
			src.blobs[d] = b
		}
		d := digest.FromBytes(img.manifest)
		src.children[d] = img.manifest
		idx.Manifests = append(idx.Manifests, ocispec.Descriptor{
			MediaType: ocispec.MediaTypeImageManifest, Digest: d, Size: int64(len(img.manifest)),
			Platform: &ocispec.Platform{OS: "linux", Architecture: arch},
		})
	}
	src.manifest, _ = json.Marshal(idx)
	return src
}

func freePort(t *testing.T) int { return transporttest.FreePort(t) }

func needBinary(t *testing.T, name string) string { return transporttest.NeedBinary(t, name) }

// testRegistry is a docker-registry process.
type testRegistry struct {
	host     string
	certsDir string // certs.d with HOST/ca.crt, for TLS
	user     string
	pass     string
}

// startRegistry starts docker-registry on a free loopback port, plain HTTP
// without auth, or with TLS and htpasswd basic auth.
func startRegistry(t *testing.T, secure bool) *testRegistry {
	t.Helper()
	r := transporttest.StartRegistry(t, secure)
	return &testRegistry{host: r.Host, certsDir: r.CertsDir, user: r.User, pass: r.Pass}
}

// sysFor returns a SystemContext for talking to the registry, with no
// system files read.
func (r *testRegistry) sys(t *testing.T) *SystemContext {
	dir := t.TempDir()
	sys := &SystemContext{
		RegistriesConf:    filepath.Join(dir, "none.conf"),
		RegistriesConfDir: filepath.Join(dir, "none.d"),
		AuthFile:          filepath.Join(dir, "auth.json"),
		CertsDirs:         []string{filepath.Join(dir, "certs.d")},
		RetryDelay:        10 * time.Millisecond,
	}
	if r != nil && r.certsDir != "" {
		sys.CertsDirs = []string{r.certsDir}
	}
	return sys
}

func mustParse(t *testing.T, s string) Ref {
	t.Helper()
	r, err := ParseReference(s)
	if err != nil {
		t.Fatalf("ParseReference(%q): %v", s, err)
	}
	return r
}

// copyRef copies src (a Ref) to dst (a Ref) and returns the digest.
func copyRef(t *testing.T, sys *SystemContext, src Source, dst string, opts CopyOptions) digest.Digest {
	t.Helper()
	ctx := context.Background()
	d, err := mustParse(t, dst).NewDestination(ctx, sys)
	if err != nil {
		t.Fatalf("opening %s: %v", dst, err)
	}
	defer d.Close()
	got, err := Copy(ctx, d, src, opts)
	if err != nil {
		t.Fatalf("copying to %s: %v", dst, err)
	}
	return got
}

func openSource(t *testing.T, sys *SystemContext, s string) Source {
	t.Helper()
	src, err := mustParse(t, s).NewSource(context.Background(), sys)
	if err != nil {
		t.Fatalf("opening %s: %v", s, err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

func runCmd(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
