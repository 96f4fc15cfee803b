package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kiln-build/kiln/internal/testenv"
)

// openFixture unpacks testdata/store-v1-vfs.tar.gz: a vfs store written
// by kiln's first release (schema hash 5c0f966255093055) holding an image
// pulled from an OCI layout (gzip layer), an image committed from a
// scratch container, an image built on it, a manifest list, a working
// container with writes on the committed image and an empty one.
func openFixture(t *testing.T) (string, func() (*Store, error)) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.NeedRoot(t, "a store mounts and owns files")
	}
	dir := t.TempDir()
	if out, err := exec.Command("tar", "-C", dir, "-xzf", "testdata/store-v1-vfs.tar.gz").CombinedOutput(); err != nil {
		t.Fatalf("unpacking the fixture: %v: %s", err, out)
	}
	return dir, func() (*Store, error) {
		return Open(context.Background(), Options{Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "run")})
	}
}

// TestUpgradeFromFirstRelease opens a store of the first release: it is
// migrated once, keeps every image and container, and its layers serve
// their tars.
func TestUpgradeFromFirstRelease(t *testing.T) {
	ctx := context.Background()
	_, open := openFixture(t)
	s, err := open()
	must(t, err)
	defer s.Close()
	v, err := storedVersion(ctx, s.db.sql)
	must(t, err)
	if v != schemaVersion() {
		t.Errorf("schema version after opening = %d, want %d", v, schemaVersion())
	}
	imgs, err := s.Images(ctx)
	must(t, err)
	if len(imgs) != 3 {
		t.Fatalf("images after the upgrade: %d, want 3", len(imgs))
	}
	ctrs, err := s.Containers(ctx)
	must(t, err)
	if len(ctrs) != 2 {
		t.Fatalf("containers after the upgrade: %d, want 2", len(ctrs))
	}
	for _, img := range imgs {
		chain, err := s.LayerChain(ctx, img.TopLayer)
		must(t, err)
		for _, l := range chain {
			if !l.Files {
				t.Errorf("layer %s of a first-release store has no files", l.ID)
			}
			if err := s.LayerTar(ctx, l, io.Discard); err != nil {
				t.Errorf("tar of layer %s: %v", l.ID, err)
			}
		}
	}
	for _, c := range ctrs {
		if c.Name != "working-container" {
			continue
		}
		mp, err := s.Mount(ctx, c.ID)
		must(t, err)
		if b, err := os.ReadFile(filepath.Join(mp, "data/two")); err != nil || string(b) != "two\n" {
			t.Errorf("the container's writes after the upgrade: %q, %v", b, err)
		}
		must(t, s.Unmount(ctx, c.ID, true))
	}
	rep, err := s.Check(ctx, CheckOptions{Digests: true, BlobGrace: -1})
	must(t, err)
	for _, p := range rep.Problems {
		// The first release left the manifest a build replaced (see
		// CreateImage): that one blob is expected.
		if p.Kind != ProblemUnreferencedBlob || p.Object != "sha256:2c15663cd00e7784ec589bd096d4a1851f16081cf2582f146f844d2e13366a1c" {
			t.Errorf("check of the upgraded store: %+v", p)
		}
	}
}

// TestNewerStoreIsRefusedUntouched: a store whose schema is newer than
// this binary knows is refused with ErrStoreTooNew and not written to.
func TestNewerStoreIsRefusedUntouched(t *testing.T) {
	dir, open := openFixture(t)
	s, err := open()
	must(t, err)
	_, err = s.db.sql.Exec(`UPDATE settings SET value='99' WHERE key='schema_version'`)
	must(t, err)
	must(t, s.Close())
	db := filepath.Join(dir, "root", "kiln.db")
	before := fileSum(t, db)
	if _, err := open(); !errors.Is(err, ErrStoreTooNew) {
		t.Fatalf("opening a store of schema 99 = %v, want ErrStoreTooNew", err)
	}
	if after := fileSum(t, db); !bytes.Equal(before, after) {
		t.Error("the refused store's database was written to")
	}
}

func fileSum(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	for _, ext := range []string{"-wal", "-shm"} {
		if w, err := os.ReadFile(path + ext); err == nil && ext == "-wal" {
			b = append(b, w...)
		}
	}
	s := sha256.Sum256(b)
	return s[:]
}
