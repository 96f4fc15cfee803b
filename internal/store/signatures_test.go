package store

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/internal/image"
)

// TestManifestExtras: signatures and referrers are kept by manifest
// digest and go with the last image that has the manifest.
func TestManifestExtras(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	defer s.Close()
	manifest := []byte(`{"schemaVersion":2,"config":{}}`)
	a, err := s.CreateImage(ctx, NewImage{Config: []byte(`{"a":1}`), Manifest: manifest, MediaType: image.MediaTypeOCIManifest})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.CreateImage(ctx, NewImage{Config: []byte(`{"b":1}`), Manifest: manifest, MediaType: image.MediaTypeOCIManifest})
	if err != nil {
		t.Fatal(err)
	}
	md := digest.FromBytes(manifest)
	sigs := [][]byte{[]byte("sig one"), {0, 's', '\n'}}
	if err := s.SetSignatures(ctx, md, sigs); err != nil {
		t.Fatal(err)
	}
	ref := Referrer{Manifest: []byte(`{"subject":1}`), MediaType: image.MediaTypeOCIManifest, ArtifactType: image.MediaTypeInToto, Blobs: map[digest.Digest][]byte{digest.FromString("{}"): []byte("{}")}}
	ref.Digest = digest.FromBytes(ref.Manifest)
	bad := ref
	bad.Blobs = map[digest.Digest][]byte{digest.FromString("x"): []byte("y")}
	if err := s.AddReferrer(ctx, md, bad); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("a referrer blob that does not match its digest: %v", err)
	}
	if err := s.AddReferrer(ctx, md, ref); err != nil {
		t.Fatal(err)
	}
	check := func(wantSigs [][]byte, wantRefs int) {
		t.Helper()
		got, err := s.Signatures(ctx, md)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(wantSigs, got); diff != "" {
			t.Errorf("signatures (-want +got):\n%s", diff)
		}
		refs, err := s.Referrers(ctx, md)
		if err != nil {
			t.Fatal(err)
		}
		if len(refs) != wantRefs || wantRefs > 0 && string(refs[0].Blobs[digest.FromString("{}")]) != "{}" {
			t.Errorf("referrers: %+v, want %d", refs, wantRefs)
		}
	}
	check(sigs, 1)
	if err := s.DeleteImage(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	check(sigs, 1) // b still has the manifest
	if err := s.RemoveImages(ctx, ImageRemoval{IDs: []string{b.ID}}); err != nil {
		t.Fatal(err)
	}
	check(nil, 0)
}
