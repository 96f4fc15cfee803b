package images

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/testbase"
	"github.com/kiln-build/kiln/internal/transport"
)

// TestPush pushes a pulled base and an image built on it to a registry,
// an OCI layout and a docker-archive, reads each back with skopeo and
// umoci, and checks that the base's layers went as skopeo had pushed
// them, whatever the destination's format.
func TestPush(t *testing.T) {
	ctx := context.Background()
	reg, base := registryBase(t)
	st := newStore(t)
	sys := testSystem(t)
	img, err := Pull(ctx, st, base.Ref, PullOptions{System: sys})
	must(t, err)
	dir := t.TempDir()
	for _, tc := range []struct {
		dest string
		// read are skopeo's flags to read dest back.
		read []string
		keep bool
	}{
		{dest: "docker://" + reg.Host + "/pushed/busybox:1", read: []string{"--tls-verify=false"}, keep: true},
		{dest: "oci:" + filepath.Join(dir, "layout") + ":1", keep: true},
		{dest: "docker-archive:" + filepath.Join(dir, "a.tar") + ":pushed/busybox:1"},
	} {
		t.Run(tc.dest, func(t *testing.T) {
			ref, err := transport.ParseReference(tc.dest)
			must(t, err)
			var rec recorder
			d, err := Push(ctx, st, base.Name, ref, PushOptions{System: sys, Progress: &rec})
			must(t, err)
			if n, ok := rec.copies(); n != 1 || !ok {
				t.Errorf("progress: %d copies (all ok %v), want 1", n, ok)
			}
			readRef := tc.dest
			if tc.dest[:15] == "docker-archive:" {
				readRef = "docker-archive:" + filepath.Join(dir, "a.tar")
			}
			got := testbase.Describe(t, readRef, tc.read...)
			if tc.keep {
				if diff := cmp.Diff(base.LayerDigests(), got.LayerDigests()); diff != "" {
					t.Errorf("layers not sent as they came (-want +got):\n%s", diff)
				}
				if d != img.ManifestDigest {
					t.Errorf("pushed manifest %s, want the pulled one %s kept", d, img.ManifestDigest)
				}
			}
			if diff := cmp.Diff(base.DiffIDs, got.DiffIDs); diff != "" {
				t.Errorf("diff IDs (-want +got):\n%s", diff)
			}
			testbase.Verify(t, testbase.Unpack(t, readRef, tc.read...), testbase.Busybox)
		})
	}
	dest, err := transport.ParseReference("oci:" + filepath.Join(dir, "none") + ":1")
	must(t, err)
	_, err = Push(ctx, st, "localhost/none:latest", dest, PushOptions{System: sys})
	wantErr(t, "Push of an unknown image", err, store.ErrImageUnknown)
}

// TestCopy copies a base between two transports without the store.
func TestCopy(t *testing.T) {
	ctx := context.Background()
	_, base := registryBase(t)
	layout := filepath.Join(t.TempDir(), "layout")
	var rec recorder
	d, err := Copy(ctx, base.Ref, "oci:"+layout+":copied", CopyOptions{Source: testSystem(t), Progress: &rec})
	must(t, err)
	got := testbase.Describe(t, "oci:"+layout+":copied")
	if diff := cmp.Diff(base.LayerDigests(), got.LayerDigests()); diff != "" {
		t.Errorf("layers (-want +got):\n%s", diff)
	}
	if n, ok := rec.copies(); n != 1 || !ok || d == "" {
		t.Errorf("progress: %d copies (all ok %v), digest %q", n, ok, d)
	}
	_, err = Copy(ctx, "oci:"+layout+":nothing", "oci:"+layout+":x", CopyOptions{})
	if err == nil || errString(err)[:8] != "copying " {
		t.Errorf("Copy of a missing image: %v, want an error saying what was copied", err)
	}
}
