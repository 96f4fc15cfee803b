package store

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"

	digest "github.com/opencontainers/go-digest"

	_ "github.com/kiln-build/kiln/internal/store/driver/overlay"

	"github.com/kiln-build/kiln/internal/testenv"
)

func openTest(t *testing.T, root string) *Store {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.NeedRoot(t, "a store mounts and owns files")
	}
	s, err := Open(context.Background(), Options{Root: filepath.Join(root, "root"), RunRoot: filepath.Join(root, "run"), Driver: "overlay"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func oneFileTar(t *testing.T, name, body string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(body))
	tw.Close()
	return buf.Bytes()
}

// TestApplyLayerRefusesWrongDiffID: a tar that does not hash to the
// diff ID leaves no layer, no row and no snapshot.
func TestApplyLayerRefusesWrongDiffID(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	layer := oneFileTar(t, "a", "A")
	wrong := digest.FromString("something else")
	if _, err := s.ApplyLayer(ctx, "", wrong, bytes.NewReader(layer)); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("ApplyLayer with a wrong diff ID = %v, want ErrDigestMismatch", err)
	}
	if s.driver.Exists(ChainID("", wrong)) {
		t.Error("snapshot left behind")
	}
	var n int
	s.db.sql.QueryRow(`SELECT count(*) FROM layers`).Scan(&n)
	if n != 0 {
		t.Errorf("%d layer rows left behind", n)
	}
	good := digest.NewDigestFromBytes(digest.SHA256, sha256Sum(layer))
	if _, err := s.ApplyLayer(ctx, "", good, bytes.NewReader(layer)); err != nil {
		t.Fatalf("ApplyLayer: %v", err)
	}
}

func sha256Sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// TestRecoverInterruptedPromotion: a commit killed after the layer row
// was written but before the promotion finished is completed by the next
// Open, and the container's writes end up in the layer.
func TestRecoverInterruptedPromotion(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	c, err := s.CreateContainer(ctx, "c", "", "", []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	mp, err := s.Mount(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(mp, "f"), []byte("data"), 0o644)
	if err := s.Unmount(ctx, c.ID, true); err != nil {
		t.Fatal(err)
	}
	// Play the first half of CommitLayer as a process that then died.
	h := newCountingHash()
	if err := s.ContainerDiff(ctx, c.ID, h); err != nil {
		t.Fatal(err)
	}
	l := Layer{ID: ChainID("", h.digest()), DiffID: h.digest(), Size: h.n}
	saved := owner
	owner = "999999999:0"
	err = s.insertIncomplete(ctx, l, c.ID)
	owner = saved
	if err != nil {
		t.Fatal(err)
	}
	s.updateContainer(ctx, c.ID, `UPDATE containers SET promoting=? WHERE id=?`, l.ID, c.ID)
	s.Close()

	s = openTest(t, dir)
	defer s.Close()
	got, err := s.Layer(ctx, l.ID)
	if err != nil {
		t.Fatalf("layer after recovery: %v", err)
	}
	var buf bytes.Buffer
	if err := s.LayerTar(ctx, got, &buf); err != nil {
		t.Fatalf("layer content after recovery: %v", err)
	}
	c2, err := s.Container(ctx, c.ID)
	if err != nil || c2.Layer != l.ID {
		t.Fatalf("container after recovery: %+v %v, want it on layer %s", c2, err, l.ID)
	}
}
