package store

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/internal/image"
)

// checkFixture is a store holding an image pulled as a gzip blob (named
// localhost/base), a second image on the same layer (localhost/second)
// and a working container on the first.
type checkFixture struct {
	s             *Store
	base, second  Image
	layer         Layer
	layerBlob     digest.Digest
	ctr           Container
	ctx           context.Context
	secondLayerID string
}

func newCheckFixture(t *testing.T) *checkFixture {
	t.Helper()
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	t.Cleanup(func() {
		UnmountUnder(s.root, "")
		s.Close()
	})
	f := &checkFixture{s: s, ctx: ctx}
	f.base = pullImage(t, s, "localhost/base:latest", oneFileTar(t, "etc/hello", "hello"), "base")
	f.second = pullImage(t, s, "localhost/second:latest", oneFileTar(t, "etc/hello", "hello"), "second")
	var err error
	if f.layer, err = s.Layer(ctx, f.base.TopLayer); err != nil {
		t.Fatal(err)
	}
	blobs, err := s.LayerBlobs(ctx, f.layer.ID)
	if err != nil || len(blobs) != 1 {
		t.Fatalf("layer blobs of the pulled image: %v, %v", blobs, err)
	}
	f.layerBlob = blobs[0].Digest
	if f.ctr, err = s.CreateContainer(ctx, "work", f.base.ID, f.base.TopLayer, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	// Mounting makes the pulled layer's files.
	if _, err := s.Mount(ctx, f.ctr.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Unmount(ctx, f.ctr.ID, true); err != nil {
		t.Fatal(err)
	}
	if f.layer, err = s.Layer(ctx, f.base.TopLayer); err != nil || !f.layer.Files {
		t.Fatalf("the layer after a mount: %+v, %v; want its files made", f.layer, err)
	}
	return f
}

// pullImage stores an image the way a pull does: a gzip layer blob, a
// config and a manifest through the image destination.
func pullImage(t *testing.T, s *Store, name string, layerTar []byte, label string) Image {
	t.Helper()
	ctx := context.Background()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(layerTar)
	zw.Close()
	cfg := []byte(`{"architecture":"amd64","os":"linux","config":{"Labels":{"l":"` + label + `"}},"rootfs":{"type":"layers","diff_ids":["` + string(sha256Digest(layerTar)) + `"]}}`)
	layerDesc := ocispec.Descriptor{MediaType: image.MediaTypeOCILayer + "+gzip", Digest: sha256Digest(gz.Bytes()), Size: int64(gz.Len())}
	manifest, err := image.NewManifest(image.FormatOCI, image.FromBytes(ocispec.MediaTypeImageConfig, cfg), []ocispec.Descriptor{layerDesc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := s.NewImageDestination([]string{name})
	for _, b := range []struct {
		desc ocispec.Descriptor
		data []byte
	}{{layerDesc, gz.Bytes()}, {image.FromBytes(ocispec.MediaTypeImageConfig, cfg), cfg}} {
		if err := d.PutBlob(ctx, b.desc, bytes.NewReader(b.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.PutManifest(ctx, manifest, image.MediaTypeOCIManifest, nil); err != nil {
		t.Fatal(err)
	}
	if err := d.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	return d.Image()
}

func randomID(t *testing.T) string {
	var b [32]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (f *checkFixture) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if _, err := f.s.db.sql.Exec(q, args...); err != nil {
		t.Fatal(err)
	}
}

// TestCheckFindsAndRepairs injects each kind of damage into a sound
// store, and shows that check finds it, that --repair mends it, and that
// a second check finds nothing.
func TestCheckFindsAndRepairs(t *testing.T) {
	for _, tc := range []struct {
		kind    ProblemKind
		digests bool
		damage  func(t *testing.T, f *checkFixture)
		after   func(t *testing.T, f *checkFixture)
	}{
		{kind: ProblemDanglingName, damage: func(t *testing.T, f *checkFixture) {
			f.exec(t, `INSERT INTO names(name, image_id, added) VALUES('localhost/ghost:latest', ?, 0)`, randomID(t))
		}},
		{kind: ProblemIncompleteLayer, damage: func(t *testing.T, f *checkFixture) {
			id := randomID(t)
			f.exec(t, `INSERT INTO layers(id, parent, diff_id, state, owner, created) VALUES(?, '', ?, 'incomplete', '1:0', 0)`, id, "sha256:"+id)
			if err := f.s.driver.Create(f.ctx, id, ""); err != nil {
				t.Fatal(err)
			}
		}},
		{kind: ProblemOrphanSnapshot, damage: func(t *testing.T, f *checkFixture) {
			if err := f.s.driver.Create(f.ctx, randomID(t), f.layer.ID); err != nil {
				t.Fatal(err)
			}
		}},
		{kind: ProblemOrphanLayer, damage: func(t *testing.T, f *checkFixture) {
			tarball := oneFileTar(t, "orphan", "nobody uses me")
			if _, err := f.s.ApplyLayer(f.ctx, "", sha256Digest(tarball), bytes.NewReader(tarball)); err != nil {
				t.Fatal(err)
			}
		}},
		{kind: ProblemMissingSnapshot, damage: func(t *testing.T, f *checkFixture) {
			if err := f.s.driver.Remove(f.ctx, f.layer.ID); err != nil {
				t.Fatal(err)
			}
		}, after: func(t *testing.T, f *checkFixture) {
			mp, err := f.s.Mount(f.ctx, f.ctr.ID)
			if err != nil {
				t.Fatalf("mounting the container on the remade layer: %v", err)
			}
			if b, err := os.ReadFile(mp + "/etc/hello"); err != nil || string(b) != "hello" {
				t.Errorf("the remade layer holds %q, %v; want hello", b, err)
			}
		}},
		{kind: ProblemCorruptBlob, digests: true, damage: func(t *testing.T, f *checkFixture) {
			if err := os.WriteFile(f.s.blobPath(f.layerBlob), []byte("bit rot"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, after: func(t *testing.T, f *checkFixture) {
			if f.s.HasBlob(f.layerBlob) {
				t.Error("the corrupted blob is still there")
			}
		}},
		{kind: ProblemMissingBlob, damage: func(t *testing.T, f *checkFixture) {
			os.Remove(f.s.blobPath(f.second.ConfigDigest()))
		}, after: func(t *testing.T, f *checkFixture) {
			if _, err := f.s.Image(f.ctx, f.second.ID); err == nil {
				t.Error("the image whose config is gone is still there")
			}
			if _, err := f.s.Image(f.ctx, f.base.ID); err != nil {
				t.Errorf("the sound image went too: %v", err)
			}
		}},
		{kind: ProblemUnreferencedBlob, damage: func(t *testing.T, f *checkFixture) {
			if _, err := f.s.PutBlobBytes(f.ctx, []byte("left by a pull that died")); err != nil {
				t.Fatal(err)
			}
		}},
		{kind: ProblemMissingLayerBlob, damage: func(t *testing.T, f *checkFixture) {
			os.Remove(f.s.blobPath(f.layerBlob))
		}},

		{kind: ProblemLeakedMount, damage: func(t *testing.T, f *checkFixture) {
			if _, err := f.s.driver.Mount(f.ctx, f.ctr.ID, false); err != nil {
				t.Fatal(err)
			}
		}, after: func(t *testing.T, f *checkFixture) {
			if m, _ := f.s.driver.Mounted(f.ctr.ID); m {
				t.Error("the leaked mount is still mounted")
			}
		}},
		{kind: ProblemStaleMountCount, damage: func(t *testing.T, f *checkFixture) {
			f.exec(t, `UPDATE containers SET mount_count=3 WHERE id=?`, f.ctr.ID)
		}},
		{kind: ProblemIncompleteContainer, damage: func(t *testing.T, f *checkFixture) {
			id := randomID(t)
			f.exec(t, `INSERT INTO containers(id, name, state, owner, created) VALUES(?, 'half', 'incomplete', '1:0', 0)`, id)
		}},
	} {
		t.Run(tc.kind.String(), func(t *testing.T) {
			f := newCheckFixture(t)
			o := CheckOptions{Digests: tc.digests, BlobGrace: -1}
			if rep, err := f.s.Check(f.ctx, o); err != nil || len(rep.Problems) != 0 {
				t.Fatalf("check of the sound store: %+v, %v", rep.Problems, err)
			}
			tc.damage(t, f)
			rep, err := f.s.Check(f.ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			if !hasProblem(rep, tc.kind) || rep.Remaining() == 0 {
				t.Fatalf("check found %+v, want a %s", rep.Problems, tc.kind)
			}
			o.Repair = true
			if rep, err = f.s.Check(f.ctx, o); err != nil || rep.Remaining() != 0 {
				t.Fatalf("check --repair left %+v, %v", rep.Problems, err)
			}
			o.Repair = false
			if rep, err = f.s.Check(f.ctx, o); err != nil || len(rep.Problems) != 0 {
				t.Fatalf("check after the repair found %+v, %v", rep.Problems, err)
			}
			if tc.after != nil {
				tc.after(t, f)
			}
		})
	}
}

func hasProblem(rep CheckReport, k ProblemKind) bool {
	for _, p := range rep.Problems {
		if p.Kind == k {
			return true
		}
	}
	return false
}

// TestCheckLeavesYoungBlobs: a blob a pull has just stored, before its
// image is recorded, is not unreferenced yet.
func TestCheckLeavesYoungBlobs(t *testing.T) {
	f := newCheckFixture(t)
	d, err := f.s.PutBlobBytes(f.ctx, []byte("a pull in progress"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := f.s.Check(f.ctx, CheckOptions{Repair: true})
	if err != nil || len(rep.Problems) != 0 || !f.s.HasBlob(d) {
		t.Fatalf("check --repair with the default grace: %+v, %v; blob kept: %v", rep.Problems, err, f.s.HasBlob(d))
	}
	old := time.Now().Add(-2 * DefaultBlobGrace)
	os.Chtimes(f.s.blobPath(d), old, old)
	if rep, _ := f.s.Check(f.ctx, CheckOptions{}); !hasProblem(rep, ProblemUnreferencedBlob) {
		t.Errorf("an unreferenced blob older than the grace is not reported: %+v", rep.Problems)
	}
}

// TestCheckFindsLostLayer: a layer recorded as a blob only, whose blob is
// gone, can be rebuilt from nothing: check says so, and that the images
// and the container on it are damaged.
func TestCheckFindsLostLayer(t *testing.T) {
	f := newCheckFixture(t)
	f.exec(t, `UPDATE layers SET files='no' WHERE id=?`, f.layer.ID)
	os.Remove(f.s.blobPath(f.layerBlob))
	rep, err := f.s.Check(f.ctx, CheckOptions{BlobGrace: -1})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []ProblemKind{ProblemLostLayer, ProblemDamagedImage, ProblemBrokenContainer} {
		if !hasProblem(rep, k) {
			t.Errorf("check found %+v, want a %s", rep.Problems, k)
		}
	}
	if _, err := f.s.Mount(f.ctx, f.ctr.ID); !errors.Is(err, ErrLayerContentLost) {
		t.Errorf("mounting a container on the lost layer = %v, want ErrLayerContentLost", err)
	}
}
