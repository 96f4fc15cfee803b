// Package store is kiln's local image store: content-addressed blobs,
// layers kept as driver snapshots, images and their names, and working
// containers, with metadata in one SQLite database.
//
// Every change of metadata is one short transaction; disk work happens
// outside transactions on rows marked incomplete (being made) or removing
// (being deleted), whose owner process is recorded, so that the next
// process to open the store finishes or undoes what a killed one left.
// Many kiln processes share one store safely.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/kiln-build/kiln/internal/digestio"
	"github.com/kiln-build/kiln/internal/store/driver"
)

// Sentinel errors; match them with errors.Is.
var (
	ErrImageUnknown     = errors.New("image not known")
	ErrContainerUnknown = errors.New("container not known")
	ErrLayerUnknown     = errors.New("layer not known")
	ErrBlobUnknown      = errors.New("blob not known")
	ErrNameInUse        = errors.New("name is in use")
	ErrImageInUse       = errors.New("image is in use by a container")
	ErrDigestMismatch   = digestio.ErrDigestMismatch // the one sentinel, shared with transport
	ErrAmbiguous        = errors.New("ambiguous ID prefix")
	// ErrSnapshotsReadOnly: the store was opened with SnapshotsReadOnly
	// and the work needs snapshot files made, mounted or removed.
	ErrSnapshotsReadOnly = errors.New("the store was opened without the right to change snapshot files")
)

// Options say where the store lives and which driver it uses.
type Options struct {
	Root       string
	RunRoot    string
	Driver     string
	DriverOpts map[string]string
	Logger     *slog.Logger
	// SnapshotsReadOnly opens an existing store for a process that
	// cannot make, mount or remove snapshot files (a rootless kiln
	// outside its user namespace, whose files belong to IDs only the
	// namespace has): every such change fails with ErrSnapshotsReadOnly
	// before it starts, and so does Open when the store is new or a
	// killed process left work only recovery can finish. Metadata and
	// blobs work as usual; GC leaves unused layers to a later process.
	SnapshotsReadOnly bool
}

// Store is an open store. Its methods are safe for concurrent use, and
// other processes may use the same store at the same time.
type Store struct {
	root, runRoot string
	db            *database
	driver        driver.Driver
	log           *slog.Logger
	minFreeSpace  string // storage.conf's min_free_space (see EnsureSpace)
	// snapshotsReadOnly: Options.SnapshotsReadOnly.
	snapshotsReadOnly bool
}

// Open opens (creating if needed) the store described by o and recovers
// whatever a killed process left behind.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Driver != "" {
		if err := driver.Known(o.Driver); err != nil {
			return nil, err
		}
	}
	if o.SnapshotsReadOnly {
		if _, err := os.Stat(filepath.Join(o.Root, "kiln.db")); err != nil {
			return nil, fmt.Errorf("%w: opening store %s: %v", ErrSnapshotsReadOnly, o.Root, err)
		}
	}
	for _, dir := range []string{o.Root, o.RunRoot, filepath.Join(o.Root, "blobs", "sha256"), filepath.Join(o.Root, "tmp"), filepath.Join(o.Root, "tarsplit")} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("creating store directory: %w", err)
		}
	}
	g, err := newGate(o.Root, o.DriverOpts, o.Logger)
	if err != nil {
		return nil, err
	}
	db, err := openDatabase(ctx, filepath.Join(o.Root, "kiln.db"), g)
	if err != nil {
		return nil, err
	}
	name, err := db.driverName(ctx, o.Driver)
	if err != nil {
		db.close()
		return nil, err
	}
	drv, err := driver.New(name, driver.Options{Home: filepath.Join(o.Root, name), Opts: o.DriverOpts, Logger: o.Logger})
	if err != nil {
		db.close()
		if o.SnapshotsReadOnly {
			// Not a verdict on the driver: its check may need the rights
			// this process lacks.
			return nil, fmt.Errorf("%w: opening the %s driver: %v", ErrSnapshotsReadOnly, name, err)
		}
		return nil, err
	}
	if o.SnapshotsReadOnly {
		drv = readOnlySnapshots(drv)
	}
	s := &Store{root: o.Root, runRoot: o.RunRoot, db: db, driver: drv, log: o.Logger, minFreeSpace: o.DriverOpts["min_free_space"], snapshotsReadOnly: o.SnapshotsReadOnly}
	if _, _, _, err := s.FreeSpace(); err != nil {
		db.close()
		return nil, err
	}
	if err := lockProcess(o.Root); err != nil {
		db.close()
		return nil, err
	}
	if err := s.recover(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("recovering store %s: %w", o.Root, err)
	}
	return s, nil
}

// Close releases the database. Mounts stay: they are reference counted
// across processes.
func (s *Store) Close() error {
	s.dropPending(context.Background())
	err := s.db.close()
	unlockProcess(s.root)
	return err
}

// Root is the store's graph root.
func (s *Store) Root() string { return s.root }

// RunRoot is the store's run root.
func (s *Store) RunRoot() string { return s.runRoot }

// SnapshotsReadOnly reports whether the store was opened with
// Options.SnapshotsReadOnly.
func (s *Store) SnapshotsReadOnly() bool { return s.snapshotsReadOnly }

// Driver is the store's storage driver.
func (s *Store) Driver() driver.Driver { return s.driver }
