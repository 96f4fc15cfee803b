package images

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
)

// TestTag: a name given to an image is its name too; a name given to a
// manifest list names a list with the same index and instances; a
// reference to neither is "NAME: image not known".
func TestTag(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	img := commitImage(t, st, "f", nil, time.Unix(1700000000, 0), "localhost/one:latest")
	must(t, Tag(ctx, st, "one", []string{"two", "example.com/three:3"}))
	got, err := st.Image(ctx, img.ID)
	must(t, err)
	if diff := cmp.Diff([]string{"localhost/one:latest", "localhost/two:latest", "example.com/three:3"}, got.Names); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}

	raw, mt := transport.NewIndex()
	must(t, st.CreateManifestList(ctx, store.ManifestList{Name: "localhost/list:latest", Index: raw, MediaType: mt}))
	_, err = AddToList(ctx, st, "list", img.ID, AddOptions{})
	must(t, err)
	must(t, Tag(ctx, st, "list", []string{"list2"}))
	want, err := st.ManifestList(ctx, "list")
	must(t, err)
	tagged, err := st.ManifestList(ctx, "list2")
	must(t, err)
	if tagged.Name != "localhost/list2:latest" || string(tagged.Index) != string(want.Index) || !cmp.Equal(tagged.Instances, want.Instances) {
		t.Errorf("tagged list = %+v, want the index and instances of %+v", tagged, want)
	}

	err = Tag(ctx, st, "nothing", []string{"x"})
	wantErr(t, "Tag of nothing", err, store.ErrImageUnknown)
	if err.Error() != "nothing: image not known" {
		t.Errorf("Tag of nothing: %q, want Buildah's %q", err, "nothing: image not known")
	}
}
