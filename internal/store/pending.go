package store

import (
	"context"
	"database/sql"

	digest "github.com/opencontainers/go-digest"
)

// Pending blobs. Every blob a process writes is recorded as pending,
// with the process's token, before it takes its name in the store, and
// every blob an image removal lets go is recorded the same way before
// the removal commits. Whatever of them nothing names when the process
// ends is removed: by the process itself when it closes the store, and
// for a process that was killed, by the next one to open the store, which
// then collects the layers such work left behind too. A failed or killed
// pull, build, commit, import or removal thus gives back every byte it
// wrote and nobody uses.
//
// A live process's pending blobs are never removed by another one
// (removeUnusedBlobs): a pull's blob is safe from a concurrent rmi
// before the pull's image names it.

// markPending records blobs as this process's pending ones.
func (s *Store) markPending(ctx context.Context, tx *sql.Tx, blobs ...digest.Digest) error {
	for _, d := range blobs {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO blob_pending(digest, owner) VALUES(?,?)`, d, owner); err != nil {
			return err
		}
	}
	return nil
}

// notePending records a blob about to be written as pending, in a
// transaction of its own.
func (s *Store) notePending(ctx context.Context, d digest.Digest) error {
	return s.db.tx(ctx, func(tx *sql.Tx) error { return s.markPending(ctx, tx, d) })
}

// dropPending removes this process's pending blobs that nothing names,
// and forgets the others: the process's work is over.
func (s *Store) dropPending(ctx context.Context) {
	s.settlePending(ctx, owner)
}

// settlePending settles the pending blobs of the process tok.
func (s *Store) settlePending(ctx context.Context, tok string) {
	var ds []digest.Digest
	rows, err := s.db.sql.QueryContext(ctx, `SELECT digest FROM blob_pending WHERE owner=?`, tok)
	if err != nil {
		return
	}
	for rows.Next() {
		var d digest.Digest
		if rows.Scan(&d) == nil {
			ds = append(ds, d)
		}
	}
	rows.Close()
	if len(ds) == 0 {
		return
	}
	// Layers the work recorded and no image came to name go first (a
	// failed import, a pull whose holds were dropped), with their blobs.
	_ = s.GC(ctx)
	_ = s.db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM blob_pending WHERE owner=?`, tok)
		return err
	})
	s.removeUnusedBlobs(ctx, ds)
}

// recoverPending settles the pending blobs of processes that are gone
// and reports whether there were any (their layers may want collecting).
func (s *Store) recoverPending(ctx context.Context) (bool, error) {
	owners, err := s.db.column(ctx, `SELECT DISTINCT owner FROM blob_pending`)
	if err != nil {
		return false, err
	}
	found := false
	for _, o := range owners {
		if o != owner && !s.alive(o) {
			s.settlePending(ctx, o)
			found = true
		}
	}
	return found, nil
}
