package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"sort"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite"
)

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
	if err := db.migrate(ctx, path); err != nil {
		h.Close()
		return nil, fmt.Errorf("preparing store database %s: %w", path, err)
	}
	return db, nil
}

func (db *database) close() error {
	db.gate.close()
	return db.sql.Close()
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
// the way out. An empty store (never used, or reset) takes the driver
// asked for: a listing that created it with the default must not bind it.
func (db *database) driverName(ctx context.Context, want string) (string, error) {
	if want == "overlay2" {
		want = "overlay"
	}
	var name string
	err := db.sql.QueryRowContext(ctx, `SELECT value FROM settings WHERE key='driver'`).Scan(&name)
	if err == nil && (want == "" || want == name) {
		return name, nil
	}
	err = db.tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT value FROM settings WHERE key='driver'`).Scan(&name)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			name = want
			if name == "" {
				name = "overlay"
			}
		case err != nil:
			return err
		case want == "" || want == name:
			return nil
		default:
			empty, err := storeEmpty(ctx, tx)
			if err != nil || !empty {
				return err
			}
			name = want
		}
		_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO settings(key, value) VALUES('driver', ?)`, name)
		return err
	})
	if err != nil {
		return "", err
	}
	if want != "" && want != name {
		return "", fmt.Errorf("store was created with storage driver %q, not %q: use --storage-driver %s, or `kiln storage migrate --driver %s`", name, want, name, want)
	}
	return name, nil
}

// storeEmpty reports whether the store holds nothing a driver made.
func storeEmpty(ctx context.Context, tx *sql.Tx) (bool, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM layers) + (SELECT count(*) FROM containers) + (SELECT count(*) FROM images)`).Scan(&n)
	return n == 0, err
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
