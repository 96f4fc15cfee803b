package images

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/testbase"
	"github.com/kiln-build/kiln/internal/transport"
)

// TestManifestList makes a list of a stored image and a registry image
// (named by docker://, recorded by digest), with platform fields and
// annotations set on the entries, pushes it with its images to a registry,
// and reads it back with skopeo.
func TestManifestList(t *testing.T) {
	ctx := context.Background()
	reg, base := registryBase(t)
	rich := testbase.Push(t, reg.Host, testbase.Spec{Kind: testbase.Rich, Format: testbase.OCI})
	st := newStore(t)
	sys := testSystem(t)
	local, err := Pull(ctx, st, base.Ref, PullOptions{System: sys})
	must(t, err)
	raw, mt := transport.NewIndex()
	must(t, st.CreateManifestList(ctx, store.ManifestList{Name: "localhost/list:latest", Index: raw, MediaType: mt}))

	_, err = AddToList(ctx, st, "localhost/nolist:latest", local.ID, AddOptions{})
	wantErr(t, "AddToList to an unknown list", err, store.ErrManifestListUnknown)

	added, err := AddToList(ctx, st, "localhost/list:latest", base.Name, AddOptions{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}})
	must(t, err)
	added2, err := AddToList(ctx, st, "localhost/list:latest", rich.Ref, AddOptions{
		Platform:    ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8", OSFeatures: []string{"f1"}},
		Annotations: map[string]string{"k": "v"},
		System:      sys,
	})
	must(t, err)
	ml, err := st.ManifestList(ctx, "localhost/list:latest")
	must(t, err)
	wantWhere := map[digest.Digest]string{
		added[0].Digest:  local.ID,
		added2[0].Digest: "docker://" + reg.Host + "/testbase/" + rich.Spec.String() + "@" + added2[0].Digest.String(),
	}
	if diff := cmp.Diff(wantWhere, ml.Instances); diff != "" {
		t.Errorf("where the instances are (-want +got):\n%s", diff)
	}

	dest := reg.Host + "/pushed/list:1"
	ref, err := transport.ParseReference("docker://" + dest)
	must(t, err)
	var rec recorder
	d, err := PushList(ctx, st, "localhost/list:latest", ref, PushOptions{System: sys, Progress: &rec, List: ListPushOptions{Instances: true, Remove: true}})
	must(t, err)
	if n, ok := rec.copies(); n != 1 || !ok {
		t.Errorf("progress: %d copies (all ok %v), want 1", n, ok)
	}
	out, err := exec.Command("skopeo", "--insecure-policy", "inspect", "--raw", "--tls-verify=false", "docker://"+dest).Output()
	must(t, err)
	if got := digest.FromBytes(out); got != d {
		t.Errorf("registry holds list %s, PushList said %s", got, d)
	}
	var idx ocispec.Index
	must(t, json.Unmarshal(out, &idx))
	type entry struct {
		Digest            digest.Digest
		OS, Arch, Variant string
		OSFeatures        []string
		Annotations       map[string]string
	}
	var got []entry
	for _, m := range idx.Manifests {
		got = append(got, entry{m.Digest, m.Platform.OS, m.Platform.Architecture, m.Platform.Variant, m.Platform.OSFeatures, m.Annotations})
	}
	want := []entry{
		{Digest: local.ManifestDigest, OS: "linux", Arch: "amd64"},
		{Digest: added2[0].Digest, OS: "linux", Arch: "arm64", Variant: "v8", OSFeatures: []string{"f1"}, Annotations: map[string]string{"k": "v"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pushed list (-want +got):\n%s", diff)
	}
	for _, e := range want {
		b := testbase.Describe(t, "docker://"+reg.Host+"/pushed/list@"+e.Digest.String(), "--tls-verify=false")
		if len(b.Layers) == 0 {
			t.Errorf("instance %s is not in the registry", e.Digest)
		}
	}
	if _, err := st.ManifestList(ctx, "localhost/list:latest"); err == nil {
		t.Error("the list is still in the store after a push with Remove")
	}
	_, err = PushList(ctx, st, "localhost/list:latest", ref, PushOptions{System: sys})
	wantErr(t, "PushList of a removed list", err, store.ErrManifestListUnknown)

	// Push falls back to a list when the name is no image.
	must(t, st.CreateManifestList(ctx, store.ManifestList{Name: "localhost/list2:latest", Index: raw, MediaType: mt}))
	_, err = AddToList(ctx, st, "localhost/list2:latest", local.ID, AddOptions{})
	must(t, err)
	layout := filepath.Join(t.TempDir(), "layout")
	lref, err := transport.ParseReference("oci:" + layout + ":list")
	must(t, err)
	_, err = Push(ctx, st, "localhost/list2:latest", lref, PushOptions{System: sys, List: ListPushOptions{Instances: true}})
	must(t, err)
	out, err = exec.Command("skopeo", "--insecure-policy", "inspect", "--raw", "oci:"+layout+":list").Output()
	must(t, err)
	idx = ocispec.Index{}
	must(t, json.Unmarshal(out, &idx))
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != local.ManifestDigest {
		t.Errorf("the layout's list is %s, want one entry %s", out, local.ManifestDigest)
	}
	if _, err := os.Stat(filepath.Join(layout, "blobs", "sha256", local.ManifestDigest.Encoded())); err != nil {
		t.Errorf("the list's image is not in the layout: %v", err)
	}
}
