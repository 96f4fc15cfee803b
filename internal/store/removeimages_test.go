package store

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestRemoveImages: names and images go together, their own layers and
// blobs after; a removal that cannot be done whole changes nothing.
func TestRemoveImages(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	defer s.Close()
	base := imageOn(t, s, "", 100, "localhost/base:latest")
	two := imageOn(t, s, base.TopLayer, 200, "localhost/a:latest", "localhost/b:latest")
	gone := imageOn(t, s, base.TopLayer, 300, "localhost/gone:latest")
	used := imageOn(t, s, base.TopLayer, 400)
	if _, err := s.CreateContainer(ctx, "c", used.ID, used.TopLayer, nil); err != nil {
		t.Fatal(err)
	}
	all := sorted(base.ID, two.ID, gone.ID, used.ID)

	for _, tc := range []struct {
		name string
		r    ImageRemoval
		want error
	}{
		{"unknown name", ImageRemoval{Names: []string{"localhost/a:latest", "localhost/nothing:latest"}, IDs: []string{gone.ID}}, ErrImageUnknown},
		{"unknown image", ImageRemoval{Names: []string{"localhost/a:latest"}, IDs: []string{gone.ID, "0123456789abcdef"}}, ErrImageUnknown},
		{"image in use", ImageRemoval{Names: []string{"localhost/a:latest"}, IDs: []string{gone.ID, used.ID}}, ErrImageInUse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.RemoveImages(ctx, tc.r); !errors.Is(err, tc.want) {
				t.Fatalf("RemoveImages = %v, want %v", err, tc.want)
			}
			if diff := cmp.Diff(all, imageIDs(t, s)); diff != "" {
				t.Errorf("images changed (-want +got):\n%s", diff)
			}
			img, err := s.LookupImage(ctx, "localhost/a:latest")
			if err != nil || img.ID != two.ID {
				t.Errorf("LookupImage(a) = %v, %v; the name must stay on %s", img.ID, err, two.ID[:12])
			}
		})
	}

	layers := func() int {
		n, err := s.db.column(ctx, `SELECT id FROM layers`)
		if err != nil {
			t.Fatal(err)
		}
		return len(n)
	}
	before := layers()
	if err := s.RemoveImages(ctx, ImageRemoval{Names: []string{"localhost/a:latest"}, IDs: []string{gone.ID}}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sorted(base.ID, two.ID, used.ID), imageIDs(t, s)); diff != "" {
		t.Errorf("images (-want +got):\n%s", diff)
	}
	got, err := s.Image(ctx, two.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"localhost/b:latest"}, got.Names); diff != "" {
		t.Errorf("names of the untagged image (-want +got):\n%s", diff)
	}
	if s.HasBlob(gone.ConfigDigest()) || s.HasBlob(gone.ManifestDigest) {
		t.Error("the deleted image's config or manifest blob is still there")
	}
	if got := layers(); got != before-1 {
		t.Errorf("%d layers after, want %d: the deleted image's own layer goes", got, before-1)
	}
}
