// Package testbase makes base images with tools other than kiln, for
// tests that must not feed kiln only its own output: a busybox rootfs
// from Debian's busybox-static, OCI layouts made by umoci (one layer, or
// a "rich" base whose later layers hold whiteouts, an opaque directory,
// hard links, an xattr, a device node, a setuid file and non-root
// owners), an image that a real dockerd built from a Dockerfile and
// saved with docker save, and copies of each that skopeo writes to a
// registry (gzip, zstd or uncompressed layers; Docker v2s2 or OCI
// manifests), to oci:, oci-archive:, dir: and docker-archive:, or that
// docker load puts into a daemon.
//
// It is test support, imported only from _test.go files. Every helper
// takes a testing.TB, needs root (mknod, chown) and skips without it or
// without a tool, and fails the test when a tool fails. What takes time
// (the umoci layouts, the docker build, each staged compression) is made
// once per test binary and shared read-only; what a test may change (a
// layout it pushes into, a registry) is its own. A test binary that uses
// this package calls Cleanup from its TestMain.
package testbase

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/testenv"
	"github.com/kiln-build/kiln/internal/transport/transporttest"
)

// Kind is what a base image holds and which tools made it.
type Kind int

const (
	// Busybox is one layer that umoci repack made from the busybox rootfs
	// (see Rootfs), with Cmd /bin/sh and Docker's default PATH set by
	// umoci config.
	Busybox Kind = iota
	// Rich is Busybox's rootfs in a first umoci layer with files that
	// later layers change; a second umoci layer that deletes two of them
	// (whiteouts) and adds hard links, a user.* xattr, a character device,
	// a setuid file, a symlink, an empty directory and files owned by
	// 1000:1000 and 123:456; and a third layer, a GNU tar added by umoci
	// raw add-layer, that makes /opt/opq opaque. See Probe for what the
	// rootfs must show.
	Rich
	// Docker is what a real dockerd made: docker import of the busybox
	// rootfs tarball, then docker build of a Dockerfile on it with ENV,
	// RUN (writes, a hard link and a deletion), COPY and LABEL; saved with
	// docker save.
	Docker
)

func (k Kind) String() string {
	switch k {
	case Busybox:
		return "busybox"
	case Rich:
		return "rich"
	case Docker:
		return "docker"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Format is the manifest format skopeo writes.
type Format int

const (
	// DockerV2S2 is Docker's schema 2 manifest (skopeo --format v2s2).
	DockerV2S2 Format = iota
	// OCI is an OCI image manifest (skopeo --format oci).
	OCI
)

func (f Format) String() string {
	if f == OCI {
		return "oci"
	}
	return "v2s2"
}

// Compression is how the layers of a copy are compressed.
type Compression int

const (
	// Gzip keeps umoci's gzip blobs (or gzips docker save's tars).
	Gzip Compression = iota
	// Zstd recompresses every layer with zstd (OCI only).
	Zstd
	// Uncompressed stores plain tars (skopeo --dest-decompress).
	Uncompressed
)

func (c Compression) String() string {
	switch c {
	case Zstd:
		return "zstd"
	case Uncompressed:
		return "none"
	}
	return "gzip"
}

// Spec names one variant of a base image.
type Spec struct {
	Kind        Kind
	Format      Format
	Compression Compression
}

// String is kind-format-compression, e.g. "rich-oci-zstd"; it is also the
// repository name under testbase/ that Push writes.
func (s Spec) String() string {
	return s.Kind.String() + "-" + s.Format.String() + "-" + s.Compression.String()
}

// Base is one base image at one place, as the tool that wrote it there
// describes it.
type Base struct {
	Spec Spec
	// Ref is the transport reference kiln pulls it by: docker://HOST/…,
	// oci:DIR:TAG, oci-archive:FILE, dir:DIR, docker-archive:FILE or
	// docker-daemon:NAME:TAG.
	Ref string
	// Name is the image's name where the transport has names: HOST/REPO:TAG
	// in a registry, REPO:TAG in a docker-archive or a daemon; empty for
	// oci:, oci-archive: and dir:.
	Name string
	// Path is the layout directory or archive file for oci:, oci-archive:,
	// dir: and docker-archive:.
	Path string
	// ManifestMediaType is the manifest's media type.
	ManifestMediaType string
	// Config is the config descriptor of the manifest.
	Config ocispec.Descriptor
	// Layers are the manifest's layer descriptors as the tool wrote them.
	// For docker-archive: and docker-daemon: they describe the layer tars
	// (uncompressed, so each digest is a diff ID).
	Layers []ocispec.Descriptor
	// DiffIDs are the config's rootfs.diff_ids.
	DiffIDs []digest.Digest
}

// LayerDigests returns the digests of b.Layers in order.
func (b Base) LayerDigests() []digest.Digest {
	out := make([]digest.Digest, len(b.Layers))
	for i, l := range b.Layers {
		out[i] = l.Digest
	}
	return out
}

// cache holds what is made once per test binary, under one directory.
var cache struct {
	mu      sync.Mutex
	dir     string
	entries map[string]*entry
}

type entry struct {
	once sync.Once
	path string
	err  error
}

// Cleanup removes what this package made for the test binary. Call it
// from TestMain after m.Run.
func Cleanup() {
	cache.mu.Lock()
	defer cache.mu.Unlock()
	if cache.dir != "" {
		transporttest.UnmountUnder(cache.dir)
		os.RemoveAll(cache.dir)
	}
	cache.dir, cache.entries = "", nil
}

// cached returns the directory that build filled for key, calling build
// once per test binary. Callers of one key wait for each other; when build
// fails, the test that ran it fails and later callers fail naming it.
func cached(t testing.TB, key string, build func(t testing.TB, dir string)) string {
	t.Helper()
	cache.mu.Lock()
	if cache.dir == "" {
		d, err := os.MkdirTemp("", "kiln-testbase-")
		if err != nil {
			cache.mu.Unlock()
			t.Fatal(err)
		}
		cache.dir, cache.entries = d, map[string]*entry{}
	}
	e := cache.entries[key]
	if e == nil {
		e = &entry{}
		cache.entries[key] = e
	}
	root := cache.dir
	cache.mu.Unlock()
	e.once.Do(func() {
		done := false
		defer func() {
			if !done {
				e.err = fmt.Errorf("making base %q failed in %s", key, t.Name())
			}
		}()
		dir := filepath.Join(root, key)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		build(t, dir)
		e.path, done = dir, true
	})
	if e.err != nil {
		t.Fatal(e.err)
	}
	return e.path
}

// needRoot skips t (fails it in CI: testenv) unless it runs as root
// with the tools named.
func needRoot(t testing.TB, tools ...string) {
	t.Helper()
	testenv.NeedRoot(t, "making base images (mknod, chown)")
	for _, tool := range tools {
		transporttest.NeedBinary(t, tool)
	}
}

// tool runs a program and returns its standard output; it fails t with
// the combined output when the program fails.
func tool(t testing.TB, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// skopeo runs skopeo with no signature policy to read.
func skopeo(t testing.TB, args ...string) string {
	t.Helper()
	return tool(t, "skopeo", append([]string{"--insecure-policy"}, args...)...)
}

// Describe reads the manifest and config of the image at ref (any
// transport skopeo reads) with skopeo inspect, extra being flags such as
// --tls-verify=false, and returns them as a Base with no Spec. Tests use
// it on what kiln pushed.
func Describe(t testing.TB, ref string, extra ...string) Base {
	t.Helper()
	raw := skopeo(t, append(append([]string{"inspect", "--raw"}, extra...), ref)...)
	var m ocispec.Manifest
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatalf("parsing the manifest of %s: %v\n%s", ref, err, raw)
	}
	cfg := skopeo(t, append(append([]string{"inspect", "--config", "--raw"}, extra...), ref)...)
	var c ocispec.Image
	if err := json.Unmarshal([]byte(cfg), &c); err != nil {
		t.Fatalf("parsing the config of %s: %v\n%s", ref, err, cfg)
	}
	mt := m.MediaType
	if mt == "" {
		mt = image.MediaTypeOCIManifest
	}
	return Base{Ref: ref, ManifestMediaType: mt, Config: m.Config, Layers: m.Layers, DiffIDs: c.RootFS.DiffIDs}
}
