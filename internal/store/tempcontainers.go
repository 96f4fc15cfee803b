package store

import (
	"context"
	"database/sql"
)

// Temporary containers (a build's step containers) are marked with the
// process that made them, so that when it dies (kill -9) a later process
// can find and remove them. Its table is in schema.go.

// MarkTemporary marks container id as this process's temporary one.
func (s *Store) MarkTemporary(ctx context.Context, id string) error {
	return s.db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO temp_containers(id, owner) VALUES(?,?)`, id, owner)
		return err
	})
}

// KeepContainer makes a temporary container an ordinary one: its process
// keeps it on purpose (a build's --force-rm=false or --rm=false), so it
// outlives the process.
func (s *Store) KeepContainer(ctx context.Context, id string) error {
	return s.db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM temp_containers WHERE id=?`, id)
		return err
	})
}

// AbandonedTemporary lists the temporary containers whose process is
// gone, and forgets marks whose container is gone.
func (s *Store) AbandonedTemporary(ctx context.Context) ([]string, error) {
	rows, err := s.db.sql.QueryContext(ctx, `SELECT t.id, t.owner, c.id IS NOT NULL FROM temp_containers t LEFT JOIN containers c ON c.id = t.id`)
	if err != nil {
		return nil, err
	}
	var abandoned, stale []string
	for rows.Next() {
		var id, own string
		var exists bool
		if err := rows.Scan(&id, &own, &exists); err != nil {
			rows.Close()
			return nil, err
		}
		switch {
		case !exists:
			stale = append(stale, id)
		case !s.alive(own):
			abandoned = append(abandoned, id)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(stale) > 0 {
		err = s.db.tx(ctx, func(tx *sql.Tx) error {
			for _, id := range stale {
				if _, err := tx.ExecContext(ctx, `DELETE FROM temp_containers WHERE id=?`, id); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return abandoned, err
}
