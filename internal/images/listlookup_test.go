package images

import (
	"context"
	"runtime"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/testbase"
	"github.com/kiln-build/kiln/internal/transport"
)

// TestListLookup: a stored list is found by name and by its ID (whole, a
// prefix, with "sha256:"), and its image for a platform is the stored
// image of that entry; an entry read from a registry, or no entry, is
// not a stored image.
func TestListLookup(t *testing.T) {
	ctx := context.Background()
	reg, base := registryBase(t)
	rich := testbase.Push(t, reg.Host, testbase.Spec{Kind: testbase.Rich, Format: testbase.OCI})
	st := newStore(t)
	sys := testSystem(t)
	local, err := Pull(ctx, st, base.Ref, PullOptions{System: sys})
	must(t, err)
	host := ocispec.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	must(t, AddBuilt(ctx, st, "localhost/list:latest", local.ID, host))
	_, err = AddToList(ctx, st, "localhost/list:latest", rich.Ref, AddOptions{Platform: ocispec.Platform{OS: "linux", Architecture: "s390x"}, System: sys})
	must(t, err)
	ml, err := st.ManifestList(ctx, "localhost/list:latest")
	must(t, err)
	id := ListID(ml)
	for _, ref := range []string{"list", "localhost/list:latest", id, id[:12], "sha256:" + id} {
		got, err := LookupList(ctx, st, ref)
		if err != nil || got.Name != ml.Name {
			t.Errorf("LookupList(%q) = %q, %v; want %q", ref, got.Name, err, ml.Name)
		}
	}
	for _, ref := range []string{"nolist", "ab", id + "0", "sha256:" + id[:12] + "x"} {
		_, err := LookupList(ctx, st, ref)
		wantErr(t, "LookupList("+ref+")", err, store.ErrManifestListUnknown)
	}

	img, err := ListImage(ctx, st, ml, transport.Platform{})
	if err != nil || img.ID != local.ID {
		t.Errorf("ListImage for this machine = %s, %v; want %s", img.ID, err, local.ID)
	}
	_, err = ListImage(ctx, st, ml, transport.Platform{OS: "linux", Architecture: "s390x"})
	wantErr(t, "ListImage of a registry entry", err, store.ErrImageUnknown)
	_, err = ListImage(ctx, st, ml, transport.Platform{OS: "linux", Architecture: "riscv64"})
	wantErr(t, "ListImage of no entry", err, store.ErrImageUnknown)
}
