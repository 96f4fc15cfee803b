package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"sort"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite"
)

const schema = `
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS layers (
	id TEXT PRIMARY KEY,
	parent TEXT NOT NULL DEFAULT '',
	diff_id TEXT NOT NULL,
	size INTEGER NOT NULL DEFAULT 0,
	state TEXT NOT NULL,
	owner TEXT NOT NULL DEFAULT '',
	promote_from TEXT NOT NULL DEFAULT '',
	mtime_bound INTEGER,
	created INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS layers_parent ON layers(parent);
CREATE TABLE IF NOT EXISTS layer_blobs (
	layer_id TEXT NOT NULL,
	digest TEXT NOT NULL,
	media_type TEXT NOT NULL,
	size INTEGER NOT NULL,
	PRIMARY KEY (layer_id, digest)
);
CREATE TABLE IF NOT EXISTS images (
	id TEXT PRIMARY KEY,
	top_layer TEXT NOT NULL DEFAULT '',
	manifest_digest TEXT NOT NULL,
	manifest_type TEXT NOT NULL,
	created INTEGER NOT NULL,
	size INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS images_top ON images(top_layer);
CREATE TABLE IF NOT EXISTS names (
	name TEXT PRIMARY KEY,
	image_id TEXT NOT NULL,
	added INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS names_image ON names(image_id);
CREATE TABLE IF NOT EXISTS containers (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	image_id TEXT NOT NULL DEFAULT '',
	layer TEXT NOT NULL DEFAULT '',
	state TEXT NOT NULL,
	owner TEXT NOT NULL DEFAULT '',
	mount_count INTEGER NOT NULL DEFAULT 0,
	promoting TEXT NOT NULL DEFAULT '',
	created INTEGER NOT NULL,
	data BLOB
);
`

// extraSchemas holds the tables other files of this package own (build
// cache, manifest lists, ...). Each adds its CREATE ... IF NOT EXISTS
// statements from an init function; all run at open after schema.
var extraSchemas []string

// database wraps the SQLite handle; every change goes through tx.
type database struct {
	sql  *sql.DB
	gate *gate // the writer lockout (freeze.go)
}

func openDatabase(ctx context.Context, path string, g *gate) (*database, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(60000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(OFF)")
	q.Add("_txlock", "immediate")
	h, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("opening store database %s: %w", path, err)
	}
	h.SetMaxOpenConns(4)
	db := &database{sql: h, gate: g}
	if db.schemaCurrent(ctx) {
		// Nothing to write: opening the store must not wait for a
		// frozen store (an export), so listings go on meanwhile.
		return db, nil
	}
	if err := db.tx(ctx, func(tx *sql.Tx) error {
		for _, stmts := range append([]string{schema}, extraSchemas...) {
			if _, err := tx.ExecContext(ctx, stmts); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO settings(key, value) VALUES('schema', ?)`, schemaVersion())
		return err
	}); err != nil {
		h.Close()
		return nil, fmt.Errorf("preparing store database %s: %w", path, err)
	}
	return db, nil
}

func (db *database) close() error {
	db.gate.close()
	return db.sql.Close()
}

// schemaVersion names the schema this binary creates: a hash of its
// statements.
func schemaVersion() string {
	h := sha256.New()
	for _, stmts := range append([]string{schema}, extraSchemas...) {
		h.Write([]byte(stmts))
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// schemaCurrent reports, with a read only, whether the database has
// this binary's schema already.
func (db *database) schemaCurrent(ctx context.Context) bool {
	var v string
	err := db.sql.QueryRowContext(ctx, `SELECT value FROM settings WHERE key='schema'`).Scan(&v)
	return err == nil && v == schemaVersion()
}

// tx runs fn in one IMMEDIATE transaction and commits it when fn returns
// nil. Keep fn short: it holds the store's write lock. While another
// process holds the store frozen (Freeze), it waits first.
func (db *database) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	if err := db.gate.enter(ctx); err != nil {
		return err
	}
	defer db.gate.leave()
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("starting store transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		return errors.Join(err, tx.Rollback())
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing store transaction: %w", err)
	}
	return nil
}

// driverName settles which driver the store uses: the one it was created
// with, unless a different one is asked for, which is an error naming
// the way out.
func (db *database) driverName(ctx context.Context, want string) (string, error) {
	var name string
	err := db.sql.QueryRowContext(ctx, `SELECT value FROM settings WHERE key='driver'`).Scan(&name)
	if err == nil {
		return checkDriver(name, want)
	}
	err = db.tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT value FROM settings WHERE key='driver'`).Scan(&name)
		if errors.Is(err, sql.ErrNoRows) {
			name = want
			if name == "" {
				name = "overlay"
			}
			if name == "overlay2" {
				name = "overlay"
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO settings(key, value) VALUES('driver', ?)`, name)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	return checkDriver(name, want)
}

// checkDriver refuses a driver other than the store's own.
func checkDriver(name, want string) (string, error) {
	if want == "overlay2" {
		want = "overlay"
	}
	if want != "" && want != name {
		return "", fmt.Errorf("store was created with storage driver %q, not %q: use --storage-driver %s, or `kiln storage migrate --driver %s`", name, want, name, want)
	}
	return name, nil
}

// column runs a query of one text column and returns its values, sorted.
func (db *database) column(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := db.sql.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	sort.Strings(out)
	return out, rows.Err()
}
