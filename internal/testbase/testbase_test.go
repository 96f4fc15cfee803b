package testbase_test

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/testbase"
	"github.com/kiln-build/kiln/internal/transport/transporttest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testbase.Cleanup()
	os.Exit(code)
}

// TestRegistry: each spec arrives in the registry in its format and
// compression, with the layer count of its kind, and its rootfs (as umoci
// unpacks it) is what Verify expects. The OCI gzip copy of the umoci kinds
// keeps the blobs umoci wrote.
func TestRegistry(t *testing.T) {
	reg := transporttest.StartRegistry(t, false)
	tests := []struct {
		spec      testbase.Spec
		manifest  string
		layerType string
		layers    int
	}{
		{testbase.Spec{Kind: testbase.Busybox}, image.MediaTypeDockerManifest, image.MediaTypeDockerLayerGz, 1},
		{testbase.Spec{Kind: testbase.Busybox, Format: testbase.OCI}, image.MediaTypeOCIManifest, "application/vnd.oci.image.layer.v1.tar+gzip", 1},
		{testbase.Spec{Kind: testbase.Busybox, Format: testbase.OCI, Compression: testbase.Zstd}, image.MediaTypeOCIManifest, "application/vnd.oci.image.layer.v1.tar+zstd", 1},
		{testbase.Spec{Kind: testbase.Busybox, Compression: testbase.Uncompressed}, image.MediaTypeDockerManifest, image.MediaTypeDockerLayer, 1},
		{testbase.Spec{Kind: testbase.Rich, Format: testbase.OCI}, image.MediaTypeOCIManifest, "application/vnd.oci.image.layer.v1.tar+gzip", 3},
		{testbase.Spec{Kind: testbase.Rich, Format: testbase.OCI, Compression: testbase.Uncompressed}, image.MediaTypeOCIManifest, "application/vnd.oci.image.layer.v1.tar", 3},
		{testbase.Spec{Kind: testbase.Docker}, image.MediaTypeDockerManifest, image.MediaTypeDockerLayerGz, 0},
	}
	umociDigests := map[testbase.Kind][]digest.Digest{}
	for _, tt := range tests {
		t.Run(tt.spec.String(), func(t *testing.T) {
			b := testbase.Push(t, reg.Host, tt.spec)
			if b.ManifestMediaType != tt.manifest {
				t.Errorf("manifest media type %s, want %s", b.ManifestMediaType, tt.manifest)
			}
			if len(b.Layers) == 0 || len(b.Layers) != len(b.DiffIDs) || tt.layers != 0 && len(b.Layers) != tt.layers {
				t.Errorf("%d layers and %d diff IDs, want %d", len(b.Layers), len(b.DiffIDs), tt.layers)
			}
			for _, l := range b.Layers {
				if l.MediaType != tt.layerType {
					t.Errorf("layer %s has media type %s, want %s", l.Digest, l.MediaType, tt.layerType)
				}
			}
			if tt.spec.Compression == testbase.Uncompressed {
				if diff := cmp.Diff(b.DiffIDs, b.LayerDigests()); diff != "" {
					t.Errorf("uncompressed layers are not their diff IDs (-diffIDs +layers):\n%s", diff)
				}
			}
			if tt.spec.Format == testbase.OCI && tt.spec.Compression == testbase.Gzip {
				umociDigests[tt.spec.Kind] = b.LayerDigests()
			}
			testbase.Verify(t, testbase.Unpack(t, b.Ref, "--src-tls-verify=false"), tt.spec.Kind)
		})
	}
	// What umoci wrote: the same blobs in its own layout.
	for k, got := range umociDigests {
		l := testbase.OCILayout(t, testbase.Spec{Kind: k, Format: testbase.OCI})
		if diff := cmp.Diff(l.LayerDigests(), got); diff != "" {
			t.Errorf("%s: the registry copy changed umoci's blobs (-layout +registry):\n%s", k, diff)
		}
	}
}

// TestLayouts: oci:, oci-archive:, dir: and docker-archive: copies hold
// the kind's rootfs; a docker-archive's layers are its diff IDs.
func TestLayouts(t *testing.T) {
	rich := testbase.Spec{Kind: testbase.Rich, Format: testbase.OCI}
	for _, b := range []testbase.Base{
		testbase.OCILayout(t, rich),
		testbase.OCIArchive(t, testbase.Spec{Kind: testbase.Busybox, Format: testbase.OCI, Compression: testbase.Zstd}),
		testbase.Dir(t, testbase.Spec{Kind: testbase.Rich, Compression: testbase.Uncompressed}),
		testbase.DockerArchive(t, rich),
		testbase.DockerArchive(t, testbase.Spec{Kind: testbase.Docker}),
	} {
		t.Run(b.Ref[:strings.Index(b.Ref, ":")], func(t *testing.T) {
			if len(b.Layers) == 0 || len(b.Layers) != len(b.DiffIDs) {
				t.Fatalf("%s: %d layers, %d diff IDs", b.Ref, len(b.Layers), len(b.DiffIDs))
			}
			if strings.HasPrefix(b.Ref, "docker-archive:") {
				if diff := cmp.Diff(b.DiffIDs, b.LayerDigests()); diff != "" {
					t.Errorf("%s: layer tars are not the diff IDs (-diffIDs +layers):\n%s", b.Ref, diff)
				}
			}
			testbase.Verify(t, testbase.Unpack(t, b.Ref), b.Spec.Kind)
		})
	}
}

// TestProbe: each kind's probe prints what it says in a real docker, from
// images docker load put in the daemon (the Docker kind as docker build
// made it).
func TestProbe(t *testing.T) {
	d := transporttest.StartDockerd(t)
	for _, k := range []testbase.Kind{testbase.Busybox, testbase.Rich, testbase.Docker} {
		t.Run(k.String(), func(t *testing.T) {
			b := testbase.Daemon(t, d, testbase.Spec{Kind: k})
			script, want := k.Probe()
			got := d.Docker(t, "run", "--rm", "--network", "none", b.Name, "/bin/sh", "-c", script)
			if diff := cmp.Diff(want, strings.TrimSpace(got)); diff != "" {
				t.Errorf("probe in docker run of %s (-want +got):\n%s", b.Name, diff)
			}
		})
	}
}
