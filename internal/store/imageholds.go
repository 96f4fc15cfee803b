package store

import (
	"context"
	"database/sql"
)

// ReleaseImages drops this process's holds on images (see NewImage.Hold).
func (s *Store) ReleaseImages(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	return s.db.tx(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `DELETE FROM image_holds WHERE image_id=? AND owner=?`, id, owner); err != nil {
				return err
			}
		}
		return nil
	})
}

// heldImages adds to used the images a live process holds.
func (s *Store) heldImages(ctx context.Context, used map[string]bool) error {
	rows, err := s.db.sql.QueryContext(ctx, `SELECT image_id, owner FROM image_holds`)
	if err != nil {
		return err
	}
	defer rows.Close()
	alive := map[string]bool{}
	for rows.Next() {
		var id, own string
		if err := rows.Scan(&id, &own); err != nil {
			return err
		}
		live, seen := alive[own]
		if !seen {
			live = own == owner || s.alive(own)
			alive[own] = live
		}
		if live {
			used[id] = true
		}
	}
	return rows.Err()
}
