package store

import (
	"context"
	"database/sql"
	"os"

	digest "github.com/opencontainers/go-digest"
)

// orphanLayersQuery selects the complete layers that no image, container,
// other layer or process's hold (AddBlobLayer) uses.
const orphanLayersQuery = `SELECT id FROM layers l WHERE state='complete'
	AND NOT EXISTS (SELECT 1 FROM images WHERE top_layer=l.id)
	AND NOT EXISTS (SELECT 1 FROM containers WHERE layer=l.id OR promoting=l.id)
	AND NOT EXISTS (SELECT 1 FROM layers c WHERE c.parent=l.id)
	AND NOT EXISTS (SELECT 1 FROM layer_holds h WHERE h.layer_id=l.id)`

// GC removes complete layers that no image, container or other layer
// uses, with their compressed blobs. Layers are marked in a transaction
// and their files removed after it commits; a crash in between is
// finished by recovery.
func (s *Store) GC(ctx context.Context) error {
	if s.snapshotsReadOnly {
		return nil // the next process that may remove files collects them
	}
	for {
		var doomed []string
		err := s.db.tx(ctx, func(tx *sql.Tx) error {
			rows, err := tx.QueryContext(ctx, orphanLayersQuery)
			if err != nil {
				return err
			}
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return err
				}
				doomed = append(doomed, id)
			}
			rows.Close()
			for _, id := range doomed {
				if _, err := tx.ExecContext(ctx, `UPDATE layers SET state='removing', owner=? WHERE id=?`, owner, id); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil || len(doomed) == 0 {
			return err
		}
		for _, id := range doomed {
			if err := s.removeLayerFiles(ctx, id); err != nil {
				return err
			}
		}
	}
}

// removeLayerFiles deletes a layer marked removing: snapshot, unshared
// blobs, then its rows.
func (s *Store) removeLayerFiles(ctx context.Context, id string) error {
	blobs, err := s.LayerBlobs(ctx, id)
	if err != nil {
		return err
	}
	if err := s.driver.Remove(ctx, id); err != nil {
		return err
	}
	s.removeTarSplit(id)
	s.removeLayerIndex(id)
	err = s.db.tx(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{`DELETE FROM layer_blobs WHERE layer_id=?`, `DELETE FROM layers WHERE id=? AND state='removing'`} {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	var ds []digest.Digest
	for _, b := range blobs {
		ds = append(ds, b.Digest)
	}
	s.removeUnusedBlobs(ctx, ds)
	return nil
}

// removeUnusedBlobs deletes those of blobs that no image or layer names.
func (s *Store) removeUnusedBlobs(ctx context.Context, blobs []digest.Digest) {
	for _, d := range blobs {
		// Check and remove under the write lock: a writer recording a
		// reference to d (CreateImage, AddLayerBlob) makes sure, under the
		// same lock, that the file is there.
		_ = s.db.tx(ctx, func(tx *sql.Tx) error {
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM images WHERE id=? OR manifest_digest=?
				UNION ALL SELECT 1 FROM layer_blobs WHERE digest=?
				UNION ALL SELECT 1 FROM blob_pending WHERE digest=? AND owner!=? LIMIT 1`, d.Encoded(), d, d, d, owner).Scan(&one)
			if err == sql.ErrNoRows {
				_ = os.Remove(s.blobPath(d))
				_, err = tx.ExecContext(ctx, `DELETE FROM blob_repositories WHERE digest=?`, d)
			}
			return err
		})
	}
}
