package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestCopyRoundTrip copies an image into every transport that keeps OCI
// manifests, then from each to each, and checks the manifest digest never
// changes.
func TestCopyRoundTrip(t *testing.T) {
	reg := startRegistry(t, false)
	sys := reg.sys(t)
	img := testImage(t, 2, "amd64")
	want := digest.FromBytes(img.manifest)
	dir := t.TempDir()
	refs := map[string]func(tag string) string{
		"oci":         func(tag string) string { return "oci:" + filepath.Join(dir, "layout-"+tag) + ":" + tag },
		"oci-archive": func(tag string) string { return "oci-archive:" + filepath.Join(dir, tag+".tar") + ":" + tag },
		"dir":         func(tag string) string { return "dir:" + filepath.Join(dir, "dir-"+tag) },
		"docker":      func(tag string) string { return "docker://" + reg.host + "/kiln/rt:" + tag },
	}
	for from, fromRef := range refs {
		seed := fromRef("seed-" + from)
		if got := copyRef(t, sys, img, seed, CopyOptions{}); got != want {
			t.Fatalf("copy to %s: digest %s, want %s", seed, got, want)
		}
		for to, toRef := range refs {
			t.Run(from+"-to-"+to, func(t *testing.T) {
				dst := toRef(from + "-" + to)
				src := openSource(t, sys, seed)
				if got := copyRef(t, sys, src, dst, CopyOptions{}); got != want {
					t.Errorf("copy %s -> %s: digest %s, want %s", seed, dst, got, want)
				}
				raw, _, err := openSource(t, sys, dst).Manifest(context.Background(), nil)
				if err != nil {
					t.Fatal(err)
				}
				if got := digest.FromBytes(raw); got != want {
					t.Errorf("reading back %s: digest %s, want %s", dst, got, want)
				}
			})
		}
	}
}

func TestCopyIndex(t *testing.T) {
	reg := startRegistry(t, false)
	sys := reg.sys(t)
	idx := testIndex(t)
	want := digest.FromBytes(idx.manifest)
	layout := filepath.Join(t.TempDir(), "layout")
	tests := []struct {
		name string
		dst  string
		opts CopyOptions
		want func(t *testing.T, got digest.Digest)
	}{
		{"all to oci", "oci:" + layout + ":all", CopyOptions{All: true}, func(t *testing.T, got digest.Digest) {
			if got != want {
				t.Errorf("digest %s, want %s", got, want)
			}
		}},
		{"all to registry", "docker://" + reg.host + "/kiln/idx:all", CopyOptions{All: true}, func(t *testing.T, got digest.Digest) {
			if got != want {
				t.Errorf("digest %s, want %s", got, want)
			}
		}},
		{"arm64 only", "oci:" + layout + ":arm64", CopyOptions{Platform: Platform{OS: "linux", Architecture: "arm64"}}, func(t *testing.T, got digest.Digest) {
			var m ocispec.Index
			json.Unmarshal(idx.manifest, &m)
			if got != m.Manifests[1].Digest {
				t.Errorf("digest %s, want the arm64 instance %s", got, m.Manifests[1].Digest)
			}
		}},
		{"v2s2 list", "docker://" + reg.host + "/kiln/idx:v2s2", CopyOptions{All: true, Format: FormatV2S2}, func(t *testing.T, got digest.Digest) {
			raw, mt, err := openSource(t, sys, "docker://"+reg.host+"/kiln/idx:v2s2").Manifest(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if mt != image.MediaTypeDockerManifestList || digest.FromBytes(raw) != got {
				t.Errorf("got %s %s, want a manifest list with digest %s", mt, digest.FromBytes(raw), got)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.want(t, copyRef(t, sys, idx, tc.dst, tc.opts))
		})
	}
	// Copy the v2s2 list back to OCI: every instance must be readable.
	src := openSource(t, sys, "docker://"+reg.host+"/kiln/idx:v2s2")
	got := copyRef(t, sys, src, "oci:"+layout+":back", CopyOptions{All: true})
	if got != want {
		t.Errorf("v2s2 list converted back to OCI: digest %s, want the original %s", got, want)
	}
}

// TestDockerArchiveConversion checks that docker-archive gets a Docker
// schema 2 image with uncompressed layers whose digests are the diff IDs,
// and that reading it back yields the same config.
func TestDockerArchiveConversion(t *testing.T) {
	img := testImage(t, 2, "amd64")
	file := filepath.Join(t.TempDir(), "img.tar")
	sys := (*testRegistry)(nil).sys(t)
	copyRef(t, sys, img, "docker-archive:"+file+":kiln/test:v1", CopyOptions{})
	src := openSource(t, sys, "docker-archive:"+file+":kiln/test:v1")
	raw, mt, err := src.Manifest(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if mt != image.MediaTypeDockerManifest {
		t.Fatalf("media type %s, want %s", mt, image.MediaTypeDockerManifest)
	}
	var m, orig ocispec.Manifest
	json.Unmarshal(raw, &m)
	json.Unmarshal(img.manifest, &orig)
	if m.Config.Digest != orig.Config.Digest {
		t.Errorf("config digest %s, want %s", m.Config.Digest, orig.Config.Digest)
	}
	var cfg ocispec.Image
	json.Unmarshal(img.blobs[orig.Config.Digest], &cfg)
	var got []digest.Digest
	for _, l := range m.Layers {
		got = append(got, l.Digest)
		if l.MediaType != image.MediaTypeDockerLayer {
			t.Errorf("layer media type %s, want %s", l.MediaType, image.MediaTypeDockerLayer)
		}
	}
	if diff := cmp.Diff(cfg.RootFS.DiffIDs, got); diff != "" {
		t.Errorf("layer digests are not the diff IDs (-want +got):\n%s", diff)
	}
	// Back to OCI, compressed with gzip: a valid OCI image again.
	layout := filepath.Join(t.TempDir(), "layout")
	copyRef(t, sys, src, "oci:"+layout+":back", CopyOptions{Compression: CompressionGzip})
	info, err := Inspect(context.Background(), openSource(t, sys, "oci:"+layout+":back"), InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range info.LayersData {
		if l.MIMEType != ocispec.MediaTypeImageLayerGzip {
			t.Errorf("layer %s: media type %s, want gzip", l.Digest, l.MIMEType)
		}
	}
	if diff := cmp.Diff(map[string]string{"kiln.test": "yes"}, info.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
}

func TestCopyRefusesBadInput(t *testing.T) {
	big := testImage(t, 1, "amd64")
	big.manifest = append(big.manifest[:len(big.manifest)-1], []byte(`,"annotations":{"x":"`+strings.Repeat("a", 5<<20)+`"}}`)...)
	lying := testImage(t, 1, "amd64")
	var m ocispec.Manifest
	json.Unmarshal(lying.manifest, &m)
	lying.blobs[m.Layers[0].Digest] = append([]byte("x"), lying.blobs[m.Layers[0].Digest][1:]...)
	hugeConfig := testImage(t, 1, "amd64")
	var hm ocispec.Manifest
	json.Unmarshal(hugeConfig.manifest, &hm)
	hm.Config.Size = 5 << 20
	hugeConfig.manifest, _ = json.Marshal(hm)
	idx := testIndex(t)
	for d := range idx.children {
		idx.children[d] = append(idx.children[d], ' ')
	}
	tests := []struct {
		name string
		src  Source
		want error
	}{
		{"manifest over 4 MiB", big, ErrTooLarge},
		{"layer does not match its digest", lying, ErrDigestMismatch},
		{"config over 4 MiB", hugeConfig, ErrTooLarge},
		{"index child does not match its digest", idx, ErrDigestMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			layout := filepath.Join(t.TempDir(), "layout")
			dst, err := mustParse(t, "oci:"+layout+":x").NewDestination(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Copy(context.Background(), dst, tc.src, CopyOptions{All: true, Retry: -1})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Copy: %v, want %v", err, tc.want)
			}
			if _, err := mustParse(t, "oci:"+layout+":x").NewSource(context.Background(), nil); err == nil {
				t.Errorf("the refused image was committed")
			}
		})
	}
}

func TestProgressAndSkip(t *testing.T) {
	img := testImage(t, 2, "amd64")
	layout := filepath.Join(t.TempDir(), "layout")
	sys := (*testRegistry)(nil).sys(t)
	count := func() map[ProgressState]int {
		counts := map[ProgressState]int{}
		var mu = make(chan struct{}, 1)
		opts := CopyOptions{Progress: func(e ProgressEvent) {
			mu <- struct{}{}
			counts[e.State]++
			<-mu
		}}
		copyRef(t, sys, img, "oci:"+layout+":p", opts)
		delete(counts, ProgressRunning)
		return counts
	}
	if diff := cmp.Diff(map[ProgressState]int{ProgressStarted: 3, ProgressDone: 3}, count()); diff != "" {
		t.Errorf("first copy events (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[ProgressState]int{ProgressSkipped: 3}, count()); diff != "" {
		t.Errorf("second copy events (-want +got):\n%s", diff)
	}
}

func ExampleParseFormat() {
	f, _ := ParseFormat("docker")
	fmt.Println(f)
	// Output: v2s2
}
