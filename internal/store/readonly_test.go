package store

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
)

// TestSnapshotsReadOnly: a store opened with SnapshotsReadOnly reads,
// records blob-only layers and images, and refuses every change of
// snapshot files before it starts (no row left behind); it refuses a
// new store, and a store where a dead process left work for recovery.
func TestSnapshotsReadOnly(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	o := Options{Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "run"), Driver: "overlay", SnapshotsReadOnly: true}
	if _, err := Open(ctx, o); !errors.Is(err, ErrSnapshotsReadOnly) {
		t.Fatalf("a new store opened read-only: %v, want ErrSnapshotsReadOnly", err)
	}
	full := openTest(t, dir)
	tarball := oneFileTar(t, "base", "base")
	base, err := full.ApplyLayer(ctx, "", sha256Digest(tarball), bytes.NewReader(tarball))
	must(t, err)
	must(t, full.Close())

	s, err := Open(ctx, o)
	must(t, err)
	refusedErr := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrSnapshotsReadOnly) {
			t.Errorf("%s: %v, want ErrSnapshotsReadOnly", what, err)
		}
	}
	_, err = s.CreateContainer(ctx, "c", "", base.ID, nil)
	refusedErr("CreateContainer", err)
	other := oneFileTar(t, "other", "other")
	_, err = s.ApplyLayer(ctx, base.ID, sha256Digest(other), bytes.NewReader(other))
	refusedErr("ApplyLayer", err)
	lazy, err := s.AddTarLayer(ctx, base.ID, bytes.NewReader(other))
	must(t, err)
	if lazy.Files {
		t.Errorf("a tar layer made read-only has files")
	}
	refusedErr("EnsureFiles", s.EnsureFiles(ctx, lazy.ID))
	var n int
	must(t, s.db.sql.QueryRow(`SELECT count(*) FROM containers`).Scan(&n))
	if n != 0 {
		t.Errorf("%d container rows after refused creations", n)
	}
	must(t, s.Close())

	// A layer whose maker died mid-way: only recovery, which needs the
	// files, may finish it.
	full = openTest(t, dir)
	if _, err := full.db.sql.Exec(`UPDATE layers SET state='removing', owner=? WHERE id=?`, newToken(), lazy.ID); err != nil {
		t.Fatal(err)
	}
	must(t, full.Close())
	_, err = Open(ctx, o)
	refusedErr("Open with work for recovery", err)
	full = openTest(t, dir)
	defer full.Close()
	if _, err := full.Layer(ctx, lazy.ID); !errors.Is(err, ErrLayerUnknown) {
		t.Errorf("recovery left the removing layer: %v", err)
	}
	if err := full.EnsureFiles(ctx, base.ID); err != nil {
		t.Errorf("the full store: %v", err)
	}
}
