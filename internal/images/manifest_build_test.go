package images

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/internal/store"
)

// listPlatforms reads the stored list name's entries as OS/ARCH.
func listPlatforms(t *testing.T, st *store.Store, name string) []string {
	t.Helper()
	ml, err := st.ManifestList(context.Background(), name)
	must(t, err)
	var idx ocispec.Index
	must(t, json.Unmarshal(ml.Index, &idx))
	var out []string
	for _, m := range idx.Manifests {
		out = append(out, m.Platform.OS+"/"+m.Platform.Architecture)
	}
	return out
}

// TestSetBuiltList: build -t NAME with several platforms makes NAME a
// list of exactly the images built, replacing a list or taking the name
// from an image; the images a list lists are not dangling, so rmi --prune
// keeps them until no list lists them.
func TestSetBuiltList(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	now := time.Now()
	amd := commitImage(t, st, "amd", nil, now)
	arm := commitImage(t, st, "arm", nil, now)
	old := commitImage(t, st, "old", nil, now, "localhost/app:latest")
	built := []BuiltImage{
		{ID: amd.ID, Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}},
		{ID: arm.ID, Platform: ocispec.Platform{OS: "linux", Architecture: "arm64"}},
	}
	id, err := SetBuiltList(ctx, st, "localhost/app:latest", built)
	must(t, err)
	if diff := cmp.Diff([]string{"linux/amd64", "linux/arm64"}, listPlatforms(t, st, "localhost/app:latest")); diff != "" {
		t.Errorf("list entries (-want +got):\n%s", diff)
	}
	ml, err := st.ManifestList(ctx, "localhost/app:latest")
	must(t, err)
	if id != ListID(ml) {
		t.Errorf("SetBuiltList returned %s, the list's ID is %s", id, ListID(ml))
	}
	if img, err := st.Image(ctx, old.ID); err != nil || len(img.Names) != 0 {
		t.Errorf("the image that had the name: %+v, %v; want it unnamed", img, err)
	}
	// Again with one image: the list is replaced, not added to.
	_, err = SetBuiltList(ctx, st, "localhost/app:latest", built[1:])
	must(t, err)
	if diff := cmp.Diff([]string{"linux/arm64"}, listPlatforms(t, st, "localhost/app:latest")); diff != "" {
		t.Errorf("replaced list entries (-want +got):\n%s", diff)
	}
	_, err = SetBuiltList(ctx, st, "localhost/other:latest", built[:1])
	must(t, err)

	// Listed images stay; the unnamed, unlisted one goes.
	removed, err := PruneDangling(ctx, st)
	must(t, err)
	var gone []string
	for _, r := range removed {
		gone = append(gone, r.Deleted)
	}
	if diff := cmp.Diff([]string{old.ID}, gone); diff != "" {
		t.Errorf("rmi --prune with lists (-want +got):\n%s", diff)
	}
	must(t, st.DeleteManifestList(ctx, "localhost/app:latest"))
	must(t, st.DeleteManifestList(ctx, "localhost/other:latest"))
	removed, err = PruneDangling(ctx, st)
	must(t, err)
	if len(removed) != 2 {
		t.Errorf("rmi --prune after the lists went removed %+v, want both images", removed)
	}
}
