package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// The build cache maps a step's cache key (see internal/dockerfile) to the
// image that step produced. Entries whose image is gone are ignored by
// lookups and dropped by GC; the images themselves hold the layers.
// Its table is in schema.go.

// CacheEntry is one build cache record.
type CacheEntry struct {
	Key      string
	ImageID  string
	Created  time.Time
	LastUsed time.Time
}

// CacheLookup returns the image recorded for key, when that image still
// exists. It is a read: a hit is marked used by CacheTouch, so that a
// no-change rebuild never waits for the write lock on every step.
func (s *Store) CacheLookup(ctx context.Context, key string) (Image, bool, error) {
	var id string
	err := s.db.sql.QueryRowContext(ctx,
		`SELECT c.image_id FROM build_cache c JOIN images i ON i.id = c.image_id WHERE c.key = ?`, key).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return Image{}, false, nil
	}
	if err != nil {
		return Image{}, false, fmt.Errorf("looking up build cache key %s: %w", key, err)
	}
	img, err := s.Image(ctx, id)
	if errors.Is(err, ErrImageUnknown) {
		return Image{}, false, nil
	}
	return img, err == nil, err
}

// CachePut records that the step with key produced image id. A later put
// for the same key replaces the entry.
func (s *Store) CachePut(ctx context.Context, key, imageID string) error {
	now := time.Now().UnixNano()
	return s.db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO build_cache(key, image_id, created, last_used) VALUES(?,?,?,?)
			ON CONFLICT(key) DO UPDATE SET image_id=excluded.image_id, last_used=excluded.last_used`,
			key, imageID, now, now)
		return err
	})
}

// CacheTouch marks the entries with the given keys as used now.
func (s *Store) CacheTouch(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	now := time.Now().UnixNano()
	return s.db.tx(ctx, func(tx *sql.Tx) error {
		for _, k := range keys {
			if _, err := tx.ExecContext(ctx, `UPDATE build_cache SET last_used=? WHERE key=?`, now, k); err != nil {
				return err
			}
		}
		return nil
	})
}

// CacheEntries lists the build cache, oldest use first.
func (s *Store) CacheEntries(ctx context.Context) ([]CacheEntry, error) {
	rows, err := s.db.sql.QueryContext(ctx, `SELECT key, image_id, created, last_used FROM build_cache ORDER BY last_used, key`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []CacheEntry
	for rows.Next() {
		var e CacheEntry
		var created, used int64
		if err := rows.Scan(&e.Key, &e.ImageID, &created, &used); err != nil {
			return nil, err
		}
		e.Created, e.LastUsed = time.Unix(0, created), time.Unix(0, used)
		out = append(out, e)
	}
	return out, rows.Err()
}

// CacheDelete removes the entries with the given keys.
func (s *Store) CacheDelete(ctx context.Context, keys []string) error {
	return s.db.tx(ctx, func(tx *sql.Tx) error {
		for _, k := range keys {
			if _, err := tx.ExecContext(ctx, `DELETE FROM build_cache WHERE key=?`, k); err != nil {
				return err
			}
		}
		return nil
	})
}

// ParentLayers returns the IDs of layers that are some other layer's
// parent. An unnamed image whose top layer is among them, or is another
// image's top layer, is an intermediate image (hidden by `images`).
func (s *Store) ParentLayers(ctx context.Context) (map[string]bool, error) {
	ids, err := s.db.column(ctx, `SELECT DISTINCT parent FROM layers WHERE parent != ''`)
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}
