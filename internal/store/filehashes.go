package store

import (
	"context"
	"database/sql"
)

// The file hash cache remembers the content digest of build-context
// files by path and stat data, so that a rebuild reads only what changed.
// Its table is in schema.go.

// FileHash is a file's content digest and the stat data it was taken at.
type FileHash struct {
	Size, MTime, CTime int64
	Ino                uint64
	Sum                string
}

// FileHashes returns the remembered hashes of the files under dir.
func (s *Store) FileHashes(ctx context.Context, dir string) (map[string]FileHash, error) {
	rows, err := s.db.sql.QueryContext(ctx, `SELECT path, size, mtime, ctime, ino, sum FROM file_hashes WHERE path >= ? AND path < ?`, dir+"/", dir+"0")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]FileHash{}
	for rows.Next() {
		var p string
		var h FileHash
		var ino int64
		if err := rows.Scan(&p, &h.Size, &h.MTime, &h.CTime, &ino, &h.Sum); err != nil {
			return nil, err
		}
		h.Ino = uint64(ino)
		out[p] = h
	}
	return out, rows.Err()
}

// PutFileHashes remembers hashes by path, replacing older ones.
func (s *Store) PutFileHashes(ctx context.Context, hashes map[string]FileHash) error {
	if len(hashes) == 0 {
		return nil
	}
	return s.db.tx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT OR REPLACE INTO file_hashes(path, size, mtime, ctime, ino, sum) VALUES(?,?,?,?,?,?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for p, h := range hashes {
			if _, err := stmt.ExecContext(ctx, p, h.Size, h.MTime, h.CTime, int64(h.Ino), h.Sum); err != nil {
				return err
			}
		}
		return nil
	})
}
