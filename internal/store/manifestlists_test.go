package store

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	digest "github.com/opencontainers/go-digest"
)

func TestManifestLists(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	defer s.Close()
	d1 := digest.FromString("one")
	ml := ManifestList{
		Name: "localhost/list:latest", MediaType: "application/vnd.oci.image.index.v1+json",
		Index:     []byte(`{"schemaVersion":2,"manifests":[]}`),
		Instances: map[digest.Digest]string{d1: "docker://example.com/a@" + d1.String()},
	}
	if err := s.CreateManifestList(ctx, ml); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateManifestList(ctx, ml); !errors.Is(err, ErrManifestListExists) {
		t.Fatalf("creating twice: got %v, want ErrManifestListExists", err)
	}
	got, err := s.ManifestList(ctx, "list")
	if err != nil {
		t.Fatal(err)
	}
	got.Created = ml.Created
	if diff := cmp.Diff(ml, got); diff != "" {
		t.Errorf("stored list (-want +got):\n%s", diff)
	}

	d2 := digest.FromString("two")
	err = s.UpdateManifestList(ctx, "list", func(l *ManifestList) error {
		l.Instances[d2] = "local-id"
		delete(l.Instances, d1)
		l.Index = []byte(`{"schemaVersion":2,"manifests":[{}]}`)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	failing := errors.New("no")
	if err := s.UpdateManifestList(ctx, "list", func(l *ManifestList) error {
		l.Instances = nil
		return failing
	}); !errors.Is(err, failing) {
		t.Fatalf("failing update: got %v", err)
	}
	got, err = s.ManifestList(ctx, "localhost/list:latest")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[digest.Digest]string{d2: "local-id"}, got.Instances); diff != "" {
		t.Errorf("instances after update (-want +got):\n%s", diff)
	}
	if string(got.Index) != `{"schemaVersion":2,"manifests":[{}]}` {
		t.Errorf("index after update = %s", got.Index)
	}
	if err := s.UpdateManifestList(ctx, "list", func(l *ManifestList) error {
		l.Instances["sha256:bad"] = "x"
		return nil
	}); err == nil {
		t.Error("an invalid instance digest was stored")
	}
	names, err := s.ManifestListNames(ctx)
	if err != nil || !cmp.Equal(names, []string{"localhost/list:latest"}) {
		t.Errorf("ManifestListNames = %v, %v", names, err)
	}
	if err := s.DeleteManifestList(ctx, "list"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ManifestList(ctx, "list"); !errors.Is(err, ErrManifestListUnknown) {
		t.Errorf("after delete: got %v, want ErrManifestListUnknown", err)
	}
	if err := s.DeleteManifestList(ctx, "list"); !errors.Is(err, ErrManifestListUnknown) {
		t.Errorf("deleting twice: got %v, want ErrManifestListUnknown", err)
	}
}
