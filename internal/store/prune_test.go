package store

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	digest "github.com/opencontainers/go-digest"
)

// imageOn records an image whose own layer holds size bytes on parent.
func imageOn(t *testing.T, s *Store, parent string, size int, names ...string) Image {
	t.Helper()
	ctx := context.Background()
	tarball := oneFileTar(t, fmt.Sprintf("f%d-%d", size, len(names)), strings.Repeat("x", size))
	l, err := s.ApplyLayer(ctx, parent, sha256Digest(tarball), bytes.NewReader(tarball))
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.CreateImage(ctx, NewImage{TopLayer: l.ID, Config: []byte(`{"layer":"` + l.ID + `"}`),
		Manifest: []byte(`{"config":"` + l.ID + `"}`), MediaType: "application/vnd.oci.image.manifest.v1+json", Names: names})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func imageIDs(t *testing.T, s *Store) []string {
	t.Helper()
	imgs, err := s.Images(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, i := range imgs {
		ids = append(ids, i.ID)
	}
	sort.Strings(ids)
	return ids
}

func sorted(ids ...string) []string { sort.Strings(ids); return ids }

// TestPruneBuildCacheBudget keeps the most recently used cache entries
// that fit --keep-storage, removes the rest with their images, an
// unnamed image and whatever only they used, and never an image a name
// or a container holds.
func TestPruneBuildCacheBudget(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	defer s.Close()
	base := imageOn(t, s, "", 1000, "localhost/base:latest")
	used := imageOn(t, s, base.TopLayer, 1000)
	if _, err := s.CreateContainer(ctx, "c", used.ID, used.TopLayer, nil); err != nil {
		t.Fatal(err)
	}
	dangling := imageOn(t, s, base.TopLayer, 5000)
	var cached []Image
	for i, size := range []int{100 << 10, 200 << 10, 300 << 10} { // oldest use first
		img := imageOn(t, s, base.TopLayer, size)
		cached = append(cached, img)
		if err := s.CachePut(ctx, fmt.Sprintf("key%d", i), img.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.db.sql.Exec(`UPDATE build_cache SET last_used=? WHERE key=?`, int64(i+1)*1e9, fmt.Sprintf("key%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	before, err := s.Reclaimable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if before.BuildCache < 600<<10 || before.Images < 5000 {
		t.Errorf("Reclaimable = %+v, want the cache's 600K and the unnamed image's 5000 bytes at least", before)
	}
	rep, err := s.Prune(ctx, PruneOptions{BuildCache: true, KeepStorage: 350 << 10, BlobGrace: -1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.CacheEntries != 2 {
		t.Errorf("removed %d cache entries, want the 2 least recently used", rep.CacheEntries)
	}
	if diff := cmp.Diff(sorted(base.ID, used.ID, cached[2].ID), imageIDs(t, s)); diff != "" {
		t.Errorf("images after prune (-want +got):\n%s", diff)
	}
	if rep.Reclaimed < 300<<10 || len(rep.Images) != 3 {
		t.Errorf("prune reclaimed %d bytes and removed %d images, want over 300K and 3 (%s and two cache images)", rep.Reclaimed, len(rep.Images), dangling.ID[:12])
	}
	// --all: every image no container uses goes, the cache too.
	if _, err := s.Prune(ctx, PruneOptions{All: true, BuildCache: true, BlobGrace: -1}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sorted(used.ID), imageIDs(t, s)); diff != "" {
		t.Errorf("images after prune --all (-want +got):\n%s", diff)
	}
	if rep, err := s.Check(ctx, CheckOptions{BlobGrace: -1}); err != nil || len(rep.Problems) != 0 {
		t.Errorf("check after prune: %+v, %v", rep.Problems, err)
	}
}

// TestPruneKeepsListedImages: an unnamed image a stored manifest list
// lists (as a multi-platform build leaves them) is in use, also for
// prune --all; one that no list names goes.
func TestPruneKeepsListedImages(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	defer s.Close()
	listed := imageOn(t, s, "", 10)
	loose := imageOn(t, s, "", 20)
	d := digest.FromString("instance")
	if err := s.CreateManifestList(ctx, ManifestList{
		Name: "localhost/multi:latest", MediaType: "application/vnd.oci.image.index.v1+json",
		Index: []byte(`{"schemaVersion":2,"manifests":[]}`), Instances: map[digest.Digest]string{d: listed.ID},
	}); err != nil {
		t.Fatal(err)
	}
	for _, all := range []bool{false, true} {
		if _, err := s.Prune(ctx, PruneOptions{All: all, BlobGrace: -1}); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{listed.ID}, imageIDs(t, s)); diff != "" {
			t.Errorf("all=%v: images left (-want +got):\n%s (the loose one was %s)", all, diff, loose.ID)
		}
	}
}

// TestPruneLeavesHeldImages: an unnamed image a live process holds (a
// build's step image before the build caches or tags it) survives prune;
// released, or held by a process that is gone, it goes.
func TestPruneLeavesHeldImages(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	defer s.Close()
	held := func(size int) Image {
		t.Helper()
		tarball := oneFileTar(t, fmt.Sprintf("held%d", size), strings.Repeat("y", size))
		l, err := s.ApplyLayer(ctx, "", sha256Digest(tarball), bytes.NewReader(tarball))
		must(t, err)
		img, err := s.CreateImage(ctx, NewImage{TopLayer: l.ID, Config: []byte(`{"layer":"` + l.ID + `"}`),
			Manifest: []byte(`{"config":"` + l.ID + `"}`), MediaType: "application/vnd.oci.image.manifest.v1+json", Hold: true})
		must(t, err)
		return img
	}
	mine, theirs := held(1), held(2)
	prune := func() {
		t.Helper()
		if _, err := s.Prune(ctx, PruneOptions{All: true, BlobGrace: -1}); err != nil {
			t.Fatal(err)
		}
	}
	prune()
	if diff := cmp.Diff(sorted(mine.ID, theirs.ID), imageIDs(t, s)); diff != "" {
		t.Fatalf("held images pruned (-want +got):\n%s", diff)
	}
	// theirs: as if a process now gone had held it.
	if _, err := s.db.sql.Exec(`UPDATE image_holds SET owner=? WHERE image_id=?`, newToken(), theirs.ID); err != nil {
		t.Fatal(err)
	}
	prune()
	if diff := cmp.Diff([]string{mine.ID}, imageIDs(t, s)); diff != "" {
		t.Errorf("after the holder died (-want +got):\n%s", diff)
	}
	must(t, s.ReleaseImages(ctx, mine.ID))
	prune()
	if ids := imageIDs(t, s); len(ids) != 0 {
		t.Errorf("released image not pruned: %v", ids)
	}
}

// TestClaimHoldsExistingLayer: a layer a commit finds complete already
// (equal content made by another build) cannot be taken by GC before the
// commit's container names it.
func TestClaimHoldsExistingLayer(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	defer s.Close()
	tarball := oneFileTar(t, "equal", "content")
	l, err := s.ApplyLayer(ctx, "", sha256Digest(tarball), bytes.NewReader(tarball))
	must(t, err)
	existing, release, err := s.claimLayer(ctx, l, "")
	must(t, err)
	if existing == nil || existing.ID != l.ID {
		t.Fatalf("claim of a complete layer: %v", existing)
	}
	must(t, s.GC(ctx))
	if _, err := s.Layer(ctx, l.ID); err != nil {
		t.Fatalf("GC took the claimed layer: %v", err)
	}
	release()
	must(t, s.GC(ctx))
	if _, err := s.Layer(ctx, l.ID); err == nil {
		t.Error("the layer nothing names survived GC after release")
	}
}
