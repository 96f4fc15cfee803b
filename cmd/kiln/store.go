package main

import (
	"context"
	"errors"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/storageconf"
	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/store/driver"
	_ "github.com/kiln-build/kiln/internal/store/driver/btrfs"   // registers "btrfs"
	_ "github.com/kiln-build/kiln/internal/store/driver/overlay" // registers "overlay"
	_ "github.com/kiln-build/kiln/internal/store/driver/vfs"     // registers "vfs"
)

// openStore opens the store the global flags and storage.conf name. A
// new store whose default driver cannot work here falls back to vfs.
func openStore(ctx context.Context) (*store.Store, error) {
	return openStoreWith(ctx, storageconf.Overrides{
		ConfigPath: globals.StorageConf, Root: globals.Root, RunRoot: globals.RunRoot,
		Driver: globals.StorageDriver, Opts: globals.StorageOpts,
	})
}

// openStoreAt opens the kiln store at root, as a containers-storage:
// reference names another store: storage.conf says what it does not.
func openStoreAt(ctx context.Context, root, runRoot, driver string) (*store.Store, error) {
	return openStoreWith(ctx, storageconf.Overrides{ConfigPath: globals.StorageConf, Root: root, RunRoot: runRoot, Driver: driver})
}

func openStoreWith(ctx context.Context, ov storageconf.Overrides) (*store.Store, error) {
	s, err := storageconf.Resolve(ov)
	if err != nil {
		return nil, err
	}
	o := store.Options{Root: s.Root, RunRoot: s.RunRoot, Driver: s.Driver, DriverOpts: s.DriverOpts, Logger: logger, SnapshotsReadOnly: attempt != nil}
	st, err := store.Open(ctx, o)
	// A size limit overlay cannot enforce here is an error, not a reason
	// to drop the limit on vfs.
	if errors.Is(err, driver.ErrUnsupported) && s.Driver == "" && s.DriverOpts["size"] == "" {
		logger.Warn("overlay does not work here; using the vfs driver", "error", err)
		o.Driver = "vfs"
		st, err = store.Open(ctx, o)
	}
	if err != nil {
		return nil, err
	}
	// The step containers of a build whose kiln was killed, and the
	// processes still running in them, go at the next command.
	if n, err := container.RemoveAbandoned(ctx, st); errors.Is(err, store.ErrSnapshotsReadOnly) {
		st.Close()
		return nil, err
	} else if err != nil {
		logger.Warn("removing the containers of a killed build", "error", err)
	} else if n > 0 {
		logger.Debug("removed the containers of a killed build", "count", n)
	}
	return st, nil
}
