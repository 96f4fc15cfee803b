package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/kiln-build/kiln/internal/store/driver"
)

// ResetReport says what Reset removed.
type ResetReport struct {
	Root, RunRoot                     string
	Images, Names, Containers, Layers int
	Blobs, CacheEntries               int
	Bytes                             int64 // disk space the store's files took
	Unmounted                         []string
	Driver                            string
}

// Reset wipes the store at o.Root and o.RunRoot: everything mounted under
// them is unmounted (lazily when busy), every snapshot removed through
// its driver, then every file. The two directories stay, empty, since
// they may be mount points. It works on a store too damaged to open, and
// must not run while other kiln processes use the store.
func Reset(ctx context.Context, o Options) (ResetReport, error) {
	rep := ResetReport{Root: o.Root, RunRoot: o.RunRoot}
	if err := rep.count(ctx, o.Root); err != nil {
		return rep, err
	}
	for _, dir := range []string{o.Root, o.RunRoot} {
		if dir == "" {
			continue
		}
		done, err := UnmountUnder(dir, "")
		rep.Unmounted = append(rep.Unmounted, done...)
		if err != nil {
			return rep, err
		}
	}
	rep.Bytes, _ = driver.DirSize(o.Root)
	if rep.Driver != "" {
		if err := removeSnapshots(ctx, rep.Driver, o); err != nil {
			return rep, err
		}
	}
	for _, dir := range []string{o.Root, o.RunRoot} {
		if err := emptyDir(dir); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// count reads what the store's database records, if it has one.
func (rep *ResetReport) count(ctx context.Context, root string) error {
	path := filepath.Join(root, "kiln.db")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	g, err := newGate(root, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	db, err := openDatabase(ctx, path, g)
	if err != nil {
		return nil // too damaged to count: wipe all the same
	}
	defer db.close()
	_ = db.sql.QueryRowContext(ctx, `SELECT value FROM settings WHERE key='driver'`).Scan(&rep.Driver)
	for _, c := range []struct {
		n *int
		q string
	}{
		{&rep.Images, `SELECT count(*) FROM images`},
		{&rep.Names, `SELECT count(*) FROM names`},
		{&rep.Containers, `SELECT count(*) FROM containers`},
		{&rep.Layers, `SELECT count(*) FROM layers`},
	} {
		if err := db.sql.QueryRowContext(ctx, c.q).Scan(c.n); err != nil {
			return fmt.Errorf("counting what the store holds: %w", err)
		}
	}
	if ok, _ := hasTable(ctx, db.sql, "build_cache"); ok {
		_ = db.sql.QueryRowContext(ctx, `SELECT count(*) FROM build_cache`).Scan(&rep.CacheEntries)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "blobs", "sha256"))
	rep.Blobs = len(entries)
	return nil
}

// removeSnapshots removes every snapshot through the driver, which knows
// how (btrfs subvolumes are not plain directories).
func removeSnapshots(ctx context.Context, name string, o Options) error {
	d, err := driver.New(name, driver.Options{Home: filepath.Join(o.Root, name), Opts: o.DriverOpts})
	if err != nil {
		return nil // the files go below all the same
	}
	entries, err := os.ReadDir(d.Home())
	if err != nil {
		return nil
	}
	for _, e := range entries {
		if driver.ValidID(e.Name()) == nil && d.Exists(e.Name()) {
			if err := d.Remove(ctx, e.Name()); err != nil {
				return fmt.Errorf("removing snapshot %s: %w", e.Name(), err)
			}
		}
	}
	return nil
}

// emptyDir removes everything inside dir, keeping dir.
func emptyDir(dir string) error {
	if dir == "" {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("removing %s: %w", filepath.Join(dir, e.Name()), err)
		}
	}
	return nil
}
