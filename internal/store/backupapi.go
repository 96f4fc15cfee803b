package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/internal/store/driver"
)

// This file is what a backup of the store (internal/store/backup:
// export, import, driver migration) needs beyond the store's everyday
// API: a consistent read of every record, records written back with the
// identities and times they had, and the writer lockout.

// Freeze keeps every other writer out of the store until the returned
// function is called, so that a backup is one consistent point in time:
// it waits (up to lock_timeout) for the writes and commits under way in
// other processes to finish, then holds the store's lock file
// exclusively, saying who holds it, and the database's write lock.
// Writers in other processes wait for it with a message naming who, up
// to their lock_timeout, then fail with ErrStoreFrozen. Reads, and this
// process's own writes, go on. The returned function may be called more
// than once.
func (s *Store) Freeze(ctx context.Context, who string) (func() error, error) {
	thaw, err := s.db.gate.freeze(ctx, who)
	if err != nil {
		return nil, fmt.Errorf("locking store %s: %w", s.root, err)
	}
	tx, err := s.db.sql.BeginTx(ctx, nil)
	if err != nil {
		thaw()
		return nil, fmt.Errorf("locking store %s: %w", s.root, err)
	}
	// BEGIN IMMEDIATE takes the lock; a write makes sure it is held.
	if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO settings(key, value) VALUES('frozen', ?)`, owner); err != nil {
		thaw()
		return nil, errors.Join(fmt.Errorf("locking store %s: %w", s.root, err), tx.Rollback())
	}
	var once sync.Once
	return func() error {
		var err error
		once.Do(func() {
			if err = tx.Rollback(); errors.Is(err, sql.ErrTxDone) {
				err = nil
			}
			thaw()
		})
		return err
	}, nil
}

// Inventory is every complete record of the store, read in one read
// transaction so that it is consistent with itself.
type Inventory struct {
	Layers     []Layer                // parents before children, then by ID
	LayerBlobs map[string][]LayerBlob // by layer ID: every recorded blob, present or not
	Images     []Image                // oldest first, with their names
	NameAdded  map[string]time.Time   // when each name was given
	Containers []Container            // oldest first
}

// Inventory reads every complete layer, image, name and container.
func (s *Store) Inventory(ctx context.Context) (*Inventory, error) {
	in, err := s.readInventory(ctx)
	if err != nil {
		return nil, err
	}
	out := &Inventory{Layers: sortLayers(in.layers), LayerBlobs: in.layerBlobs, Images: in.images,
		NameAdded: make(map[string]time.Time, len(in.names)), Containers: in.containers}
	for _, n := range in.names {
		out.NameAdded[n.Name] = time.Unix(0, n.Added).UTC()
	}
	return out, nil
}

// sortLayers orders layers parents first, then by ID.
func sortLayers(layers map[string]Layer) []Layer {
	depth := map[string]int{}
	var depthOf func(id string, n int) int
	depthOf = func(id string, n int) int {
		if d, ok := depth[id]; ok {
			return d
		}
		l, ok := layers[id]
		if !ok || l.Parent == "" || n > 1000 {
			depth[id] = 0
			return 0
		}
		depth[id] = depthOf(l.Parent, n+1) + 1
		return depth[id]
	}
	out := make([]Layer, 0, len(layers))
	for id, l := range layers {
		depthOf(id, 0)
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool {
		if depth[out[i].ID] != depth[out[j].ID] {
			return depth[out[i].ID] < depth[out[j].ID]
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// BlobSize is the size of a stored blob; ErrBlobUnknown when it is not
// stored.
func (s *Store) BlobSize(d digest.Digest) (int64, error) {
	if err := d.Validate(); err != nil {
		return 0, fmt.Errorf("blob digest %q: %w", d, err)
	}
	fi, err := os.Stat(s.blobPath(d))
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("%w: %s", ErrBlobUnknown, d)
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// PutLayerBlob stores the layer blob r as PutBlob does (it must hash to
// want) and checks that it decompresses to the tar diffID (a blob that
// is a tar is its own diff ID), returning ErrDigestMismatch when it does
// not. With AddBlobLayer it records a layer as its blob, without files.
func (s *Store) PutLayerBlob(ctx context.Context, want, diffID digest.Digest, r io.Reader) error {
	_, _, c, err := s.putLayerBlob(ctx, want, r)
	if err != nil {
		return err
	}
	if c.diffID != diffID {
		return fmt.Errorf("blob %s: %w: it holds the tar %s, not %s", want, ErrDigestMismatch, c.diffID, diffID)
	}
	return nil
}

// SetLayerTimes sets a layer's creation time and the bound its files'
// times are clamped to (nil for none), as they were where it came from.
func (s *Store) SetLayerTimes(ctx context.Context, id string, created time.Time, mtimeBound *time.Time) error {
	var bound any
	if mtimeBound != nil {
		bound = mtimeBound.Unix()
	}
	return s.db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE layers SET created=?, mtime_bound=? WHERE id=?`, created.UnixNano(), bound, id)
		return err
	})
}

// RestoreImage records img (its ID, top layer, manifest, creation time
// and size as given; its config and manifest blobs and its layers are
// stored already) unless the store has it, and gives it img.Names with
// the times in added, taking a name from another image that has it.
// added reports whether the image was new.
func (s *Store) RestoreImage(ctx context.Context, img Image, added map[string]time.Time) (bool, error) {
	if img.TopLayer != "" {
		if _, err := s.Layer(ctx, img.TopLayer); err != nil {
			return false, err
		}
	}
	isNew := false
	err := s.db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO images(id, top_layer, manifest_digest, manifest_type, created, size) VALUES(?,?,?,?,?,?)
			ON CONFLICT(id) DO NOTHING`, img.ID, img.TopLayer, img.ManifestDigest, img.ManifestType, img.Created.UnixNano(), img.Size)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			isNew = true
		}
		for _, n := range img.Names {
			if _, err := tx.ExecContext(ctx, `INSERT INTO names(name, image_id, added) VALUES(?,?,?)
				ON CONFLICT(name) DO UPDATE SET image_id=excluded.image_id, added=excluded.added`, n, img.ID, added[n].UnixNano()); err != nil {
				return err
			}
		}
		return nil
	})
	return isNew, s.noSpace(ctx, err)
}

// RestoreContainer makes the working container c with its ID, name,
// image, layer, creation time and data as given, and the layer tar diff
// (need bytes) applied on its layer, unless the store has it (added
// false). It reads diff to its end: an error from diff at any point (a
// reader that checks a digest at the end) takes the container back.
// Its mount count starts at 0 (see RestoreMount).
func (s *Store) RestoreContainer(ctx context.Context, c Container, diff io.Reader, need int64) (added bool, err error) {
	var id string
	err = s.db.sql.QueryRowContext(ctx, `SELECT id FROM containers WHERE name=? OR id=?`, c.Name, c.ID).Scan(&id)
	switch {
	case err == nil && id == c.ID:
		if _, err := s.Container(ctx, c.ID); err == nil {
			return false, nil
		}
		return false, fmt.Errorf("container %s is being made or removed by another kiln process", c.Name)
	case err == nil:
		return false, fmt.Errorf("container name %q: %w by container %s", c.Name, ErrNameInUse, id)
	case !errors.Is(err, sql.ErrNoRows):
		return false, err
	}
	if err := s.EnsureSpace(ctx, need); err != nil {
		return false, err
	}
	err = s.db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO containers(id, name, image_id, layer, state, owner, created, data) VALUES(?,?,?,?,?,?,?,?)`,
			c.ID, c.Name, c.ImageID, c.Layer, "incomplete", owner, c.Created.UnixNano(), c.Data)
		return err
	})
	if err != nil {
		return false, s.noSpace(ctx, err)
	}
	if err := s.fillContainer(ctx, c, diff); err != nil {
		return false, errors.Join(s.noSpace(ctx, err), s.removeContainerFiles(context.WithoutCancel(ctx), c.ID))
	}
	return true, s.setState(ctx, c.ID, "complete")
}

func (s *Store) fillContainer(ctx context.Context, c Container, diff io.Reader) error {
	if _, lazy := s.driver.(driver.ParentAtMount); !lazy {
		if err := s.EnsureFiles(ctx, c.Layer); err != nil {
			return err
		}
	}
	if err := s.driver.Create(ctx, c.ID, c.Layer); err != nil {
		return err
	}
	if _, err := s.driver.ApplyDiff(ctx, c.ID, diff); err != nil {
		return err
	}
	_, err := io.Copy(io.Discard, diff)
	return err
}

// RestoreMount mounts the container and sets its mount count to count,
// as it was in the store it came from.
func (s *Store) RestoreMount(ctx context.Context, id string, count int) error {
	if _, err := s.Mount(ctx, id); err != nil {
		return err
	}
	return s.updateContainer(ctx, id, `UPDATE containers SET mount_count=? WHERE id=?`, count, id)
}

// MountedAt is where container id's tree is mounted now, or "" when it
// is not mounted, whatever its mount count says (a reboot unmounts).
func (s *Store) MountedAt(ctx context.Context, id string) string {
	if m, _ := s.driver.Mounted(id); !m {
		return ""
	}
	root, err := s.driver.Mount(ctx, id, false)
	if err != nil {
		return ""
	}
	return root
}

// NoSpace turns err into a *SpaceError (errors.Is ErrNoSpace) saying how
// full the store is when err says its filesystem is full; other errors
// are returned as they are.
func (s *Store) NoSpace(ctx context.Context, err error) error { return s.noSpace(ctx, err) }

// TableRows are every row of one metadata table, each value as SQLite
// gives it: nil, int64, float64, string or []byte.
type TableRows struct {
	Table   string
	Columns []string
	Rows    [][]any
}

// ReadTable reads every row of table, or returns nil when the store has
// no such table.
func (s *Store) ReadTable(ctx context.Context, table string) (*TableRows, error) {
	if !sqlName(table) {
		return nil, fmt.Errorf("table name %q", table)
	}
	if ok, err := hasTable(ctx, s.db.sql, table); err != nil || !ok {
		return nil, err
	}
	rows, err := s.db.sql.QueryContext(ctx, `SELECT * FROM `+table)
	if err != nil {
		return nil, fmt.Errorf("reading table %s: %w", table, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	t := &TableRows{Table: table, Columns: cols, Rows: [][]any{}}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		t.Rows = append(t.Rows, vals)
	}
	return t, rows.Err()
}

// LoadTable inserts the rows of t into the store's table of that name
// (nothing when it has none); rows whose key exists are kept. It returns
// how many rows were added.
func (s *Store) LoadTable(ctx context.Context, t TableRows) (int, error) {
	if len(t.Rows) == 0 {
		return 0, nil
	}
	if !sqlName(t.Table) {
		return 0, fmt.Errorf("table name %q", t.Table)
	}
	if ok, err := hasTable(ctx, s.db.sql, t.Table); err != nil || !ok {
		return 0, err
	}
	for _, c := range t.Columns {
		if !sqlName(c) {
			return 0, fmt.Errorf("column name %q", c)
		}
	}
	marks := strings.TrimSuffix(strings.Repeat("?,", len(t.Columns)), ",")
	q := `INSERT OR IGNORE INTO ` + t.Table + `(` + strings.Join(t.Columns, ",") + `) VALUES(` + marks + `)`
	n := 0
	err := s.db.tx(ctx, func(tx *sql.Tx) error {
		for _, row := range t.Rows {
			if len(row) != len(t.Columns) {
				return fmt.Errorf("a row of table %s has %d values for %d columns", t.Table, len(row), len(t.Columns))
			}
			res, err := tx.ExecContext(ctx, q, row...)
			if err != nil {
				return err
			}
			if k, _ := res.RowsAffected(); k == 1 {
				n++
			}
		}
		return nil
	})
	return n, s.noSpace(ctx, err)
}

// sqlName reports whether s is a plain lower-case SQL identifier.
func sqlName(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return s != ""
}
