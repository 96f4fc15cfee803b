package store

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
)

// TestDeleteContainerFinishesPromotion: a commit whose context was
// cancelled after the container's writes moved into the new layer (an
// interrupted build) leaves the layer incomplete and naming the
// container; removing the container then finishes the commit first, so
// that the next Open does not fail recovering a layer from a container
// whose files are gone (it did: "promoting snapshot ...: no such file").
func TestDeleteContainerFinishesPromotion(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	c, err := s.CreateContainer(ctx, "c", "", "", []byte("{}"))
	must(t, err)
	mp, err := s.Mount(ctx, c.ID)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(mp, "f"), []byte("data"), 0o644))
	must(t, s.Unmount(ctx, c.ID, true))
	l, err := s.CommitLayer(ctx, c.ID, CommitOptions{})
	must(t, err)
	// Play the commit as one that failed after the promotion, in a process
	// that is gone by the next Open: the layer's record incomplete and
	// naming the container, the container not yet moved onto it.
	must(t, s.db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE layers SET state='incomplete', owner=?, promote_from=? WHERE id=?`, "999999999:0", c.ID, l.ID)
		return err
	}))
	must(t, s.updateContainer(ctx, c.ID, `UPDATE containers SET promoting=?, layer='' WHERE id=?`, l.ID, c.ID))

	must(t, s.DeleteContainer(ctx, c.ID))
	var n int
	must(t, s.db.sql.QueryRow(`SELECT count(*) FROM layers WHERE state != 'complete'`).Scan(&n))
	if n != 0 {
		t.Errorf("%d incomplete layers left after the container went", n)
	}
	s.Close()
	s, err = Open(ctx, Options{Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "run"), Driver: "overlay"})
	if err != nil {
		t.Fatalf("opening the store again: %v", err)
	}
	s.Close()
}
