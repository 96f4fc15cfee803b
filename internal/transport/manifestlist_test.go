package transport

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestListInstances(t *testing.T) {
	ctx := context.Background()
	img := testImage(t, 1, "arm64")
	got, err := ListInstances(ctx, img, Platform{}, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []ocispec.Descriptor{{
		MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(img.manifest), Size: int64(len(img.manifest)),
		Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64"},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("instances of an image (-want +got):\n%s", diff)
	}
	idx := testIndex(t)
	all, err := ListInstances(ctx, idx, Platform{}, true)
	if err != nil || len(all) != 2 {
		t.Fatalf("--all of an index: %d instances, %v", len(all), err)
	}
	one, err := ListInstances(ctx, idx, Platform{OS: "linux", Architecture: "arm64"}, false)
	if err != nil || len(one) != 1 || one[0].Platform.Architecture != "arm64" {
		t.Fatalf("arm64 of an index: %+v, %v", one, err)
	}
	if _, err := ListInstances(ctx, idx, Platform{OS: "linux", Architecture: "s390x"}, false); !errors.Is(err, ErrNoMatchingPlatform) {
		t.Errorf("s390x of an index: got %v, want ErrNoMatchingPlatform", err)
	}
}

func TestEditIndex(t *testing.T) {
	raw, mt := NewIndex()
	if mt != ocispec.MediaTypeImageIndex {
		t.Fatalf("NewIndex media type %s", mt)
	}
	a := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("a"), Size: 1}
	b := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("b"), Size: 2}
	a2 := a
	a2.Annotations = map[string]string{"k": "v"}
	steps := []struct {
		name string
		edit func([]ocispec.Descriptor) ([]ocispec.Descriptor, error)
		want []ocispec.Descriptor
	}{
		{"add a, b", func(in []ocispec.Descriptor) ([]ocispec.Descriptor, error) { return AddInstances(in, a, b), nil }, []ocispec.Descriptor{a, b}},
		{"replace a", func(in []ocispec.Descriptor) ([]ocispec.Descriptor, error) { return AddInstances(in, a2), nil }, []ocispec.Descriptor{a2, b}},
		{"remove b", func(in []ocispec.Descriptor) ([]ocispec.Descriptor, error) { return RemoveInstance(in, b.Digest) }, []ocispec.Descriptor{a2}},
	}
	for _, s := range steps {
		var err error
		if raw, err = EditIndex(raw, s.edit); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		var idx ocispec.Index
		if err := json.Unmarshal(raw, &idx); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(s.want, idx.Manifests); diff != "" {
			t.Errorf("%s (-want +got):\n%s", s.name, diff)
		}
		if idx.MediaType != ocispec.MediaTypeImageIndex || idx.SchemaVersion != 2 {
			t.Errorf("%s: index lost its type: %s", raw, s.name)
		}
	}
	if _, err := EditIndex(raw, func(in []ocispec.Descriptor) ([]ocispec.Descriptor, error) { return RemoveInstance(in, b.Digest) }); !errors.Is(err, ErrNoInstance) {
		t.Errorf("removing a missing instance: got %v, want ErrNoInstance", err)
	}
}

// TestListSourceCopy builds a list from two single-image sources and
// copies it with All into an OCI layout, which must then hold both.
func TestListSourceCopy(t *testing.T) {
	ctx := context.Background()
	imgs := map[digest.Digest]*memSource{}
	raw, mt := NewIndex()
	for _, arch := range []string{"amd64", "arm64"} {
		img := testImage(t, 2, arch)
		descs, err := ListInstances(ctx, img, Platform{}, false)
		if err != nil {
			t.Fatal(err)
		}
		imgs[descs[0].Digest] = img
		if raw, err = EditIndex(raw, func(in []ocispec.Descriptor) ([]ocispec.Descriptor, error) { return AddInstances(in, descs...), nil }); err != nil {
			t.Fatal(err)
		}
	}
	opened := 0
	src := NewListSource(raw, mt, func(_ context.Context, d digest.Digest) (Source, error) {
		opened++
		return imgs[d], nil
	})
	defer src.Close()
	dir := t.TempDir()
	got := copyRef(t, nil, src, "oci:"+dir+":list", CopyOptions{All: true})
	if got != digest.FromBytes(raw) {
		t.Errorf("copied index digest %s, want %s (unchanged)", got, digest.FromBytes(raw))
	}
	if opened != 2 {
		t.Errorf("instance sources opened %d times, want 2", opened)
	}
	for _, p := range []Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}} {
		back := openSource(t, nil, "oci:"+dir+":list")
		img, err := ReadImage(ctx, back, p)
		if err != nil || img.Config.Architecture != p.Architecture {
			t.Errorf("reading %s back: %v", p.Architecture, err)
		}
	}
}

func TestResolveDigestAndImageName(t *testing.T) {
	ctx := context.Background()
	idx := testIndex(t)
	d, err := ResolveDigest(ctx, idx, Platform{OS: "linux", Architecture: "arm64"})
	if err != nil {
		t.Fatal(err)
	}
	var index ocispec.Index
	json.Unmarshal(idx.manifest, &index)
	if d != index.Manifests[1].Digest {
		t.Errorf("ResolveDigest(arm64) = %s, want %s", d, index.Manifests[1].Digest)
	}
	for _, c := range []struct{ ref, want string }{
		{"docker://quay.io/a/b:1", "quay.io/a/b:1"},
		{"docker-daemon:busybox:latest", "docker.io/library/busybox:latest"},
		{"docker-archive:/x.tar:foo/bar:2", "docker.io/foo/bar:2"},
		{"oci:/dir:tag", "docker.io/library/tag:latest"},
		{"oci:/var/tmp/dir", "localhost/var/tmp/dir:latest"},
		{"oci:/var/tmp/dir/", "localhost/var/tmp/dir:latest"},
		{"oci:/tmp/Upper", ""},
		{"oci-archive:/x.tar", ""},
	} {
		if got := ImageName(mustParse(t, c.ref), idx); got != c.want {
			t.Errorf("ImageName(%s) = %q, want %q", c.ref, got, c.want)
		}
	}
}
