package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// recover finishes or undoes what processes that died left behind: layers
// being made or removed, containers being made, promoted or removed,
// mount counts of mounts that are gone, and temp files. (recoveryDue
// must know every kind of work it finishes.)
func (s *Store) recover(ctx context.Context) error {
	if s.snapshotsReadOnly {
		return s.recoveryDue(ctx)
	}
	type row struct{ id, state, own, extra string }
	collect := func(q string) ([]row, error) {
		rows, err := s.db.sql.QueryContext(ctx, q)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id, &r.state, &r.own, &r.extra); err != nil {
				return nil, err
			}
			if !s.alive(r.own) {
				out = append(out, r)
			}
		}
		return out, rows.Err()
	}
	layers, err := collect(`SELECT id, state, owner, promote_from FROM layers WHERE state != 'complete'`)
	if err != nil {
		return err
	}
	for _, l := range layers {
		if err := s.recoverLayer(ctx, l.id, l.state, l.extra); err != nil {
			if errors.Is(s.noSpace(ctx, err), ErrNoSpace) {
				// Finished by a later process once space is freed; the
				// store stays usable meanwhile (rm, prune).
				s.log.Warn("recovery of a layer must wait for free space", "layer", l.id, "error", err)
				continue
			}
			return err
		}
	}
	ctrs, err := collect(`SELECT id, state, owner, '' FROM containers WHERE state != 'complete'`)
	if err != nil {
		return err
	}
	for _, c := range ctrs {
		if err := s.removeContainerFiles(ctx, c.id); err != nil {
			return err
		}
	}
	rebasing, err := collect(`SELECT id, state, owner, promoting FROM containers WHERE promoting LIKE '` + rebasePrefix + `%'`)
	if err != nil {
		return err
	}
	for _, c := range rebasing {
		if err := s.finishRebase(ctx, c.id, strings.TrimPrefix(c.extra, rebasePrefix)); err != nil {
			return err
		}
	}
	making, err := collect(`SELECT id, files, files_owner, '' FROM layers WHERE files='` + filesMaking + `'`)
	if err != nil {
		return err
	}
	for _, l := range making {
		if err := s.dropFiles(ctx, l.id); err != nil {
			return err
		}
	}
	released, err := s.releaseDeadHolds(ctx)
	if err != nil {
		return err
	}
	settled, err := s.recoverPending(ctx)
	if err != nil {
		return err
	}
	if released || settled {
		// A killed pull, import or removal left layers nobody uses.
		if err := s.GC(ctx); err != nil {
			return err
		}
	}
	if err := s.recoverMountCounts(ctx); err != nil {
		return err
	}
	s.removeStaleTemps()
	s.removeDeadLockFiles()
	return nil
}

func (s *Store) recoverLayer(ctx context.Context, id, state, promoteFrom string) error {
	if state == "removing" {
		return s.removeLayerFiles(ctx, id)
	}
	if promoteFrom == "" {
		return s.abandonLayer(ctx, id)
	}
	// A commit died while moving a container's writes into this layer:
	// finish the move, so the container loses nothing.
	if err := s.driver.Promote(ctx, promoteFrom, id); err != nil {
		return err
	}
	size, err := s.driver.Size(ctx, id)
	if err != nil {
		return err
	}
	if _, err := s.completeLayer(ctx, id, size); err != nil {
		return err
	}
	return s.db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE containers SET layer=?, promoting='' WHERE id=?`, id, promoteFrom)
		return err
	})
}

// releaseDeadHolds drops the holds of processes that are gone and
// reports whether there were any.
func (s *Store) releaseDeadHolds(ctx context.Context) (bool, error) {
	owners, err := s.db.column(ctx, `SELECT DISTINCT owner FROM layer_holds UNION SELECT DISTINCT owner FROM image_holds`)
	if err != nil {
		return false, err
	}
	found := false
	for _, o := range owners {
		if s.alive(o) {
			continue
		}
		found = true
		if err := s.db.tx(ctx, func(tx *sql.Tx) error {
			for _, q := range []string{`DELETE FROM layer_holds WHERE owner=?`, `DELETE FROM image_holds WHERE owner=?`} {
				if _, err := tx.ExecContext(ctx, q, o); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return false, err
		}
	}
	return found, nil
}

func (s *Store) recoverMountCounts(ctx context.Context) error {
	ids, err := s.db.column(ctx, `SELECT id FROM containers WHERE mount_count > 0`)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if m, err := s.driver.Mounted(id); err == nil && !m {
			if err := s.db.tx(ctx, func(tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, `UPDATE containers SET mount_count=0 WHERE id=?`, id)
				return err
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeStaleTemps deletes temp files whose writer is gone; their names
// start with the writer's token.
func (s *Store) removeStaleTemps() {
	dir := filepath.Join(s.root, "tmp")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if s.alive(tempOwner(e.Name())) {
			continue
		}
		_ = os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

// recoveryDue is recover for a store whose snapshots are read-only: it
// changes nothing and fails with ErrSnapshotsReadOnly when a process
// that is gone left work for recovery. Stale temp and lock files and
// mount counts wait for the next full recovery. Its queries are recover's
// sources of work: a kind of recovery added there belongs here too.
func (s *Store) recoveryDue(ctx context.Context) error {
	for _, q := range []string{
		`SELECT DISTINCT owner FROM layers WHERE state != 'complete'`,
		`SELECT DISTINCT owner FROM containers WHERE state != 'complete' OR promoting LIKE '` + rebasePrefix + `%'`,
		`SELECT DISTINCT files_owner FROM layers WHERE files='` + filesMaking + `'`,
		`SELECT DISTINCT owner FROM layer_holds UNION SELECT DISTINCT owner FROM image_holds UNION SELECT DISTINCT owner FROM blob_pending`,
	} {
		owners, err := s.db.column(ctx, q)
		if err != nil {
			return err
		}
		for _, o := range owners {
			if o != owner && !s.alive(o) {
				return fmt.Errorf("%w: a process that is gone left work to finish", ErrSnapshotsReadOnly)
			}
		}
	}
	return nil
}
