package storagemigrate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/kiln-build/kiln/internal/digestio"
	"github.com/kiln-build/kiln/internal/storageconf"
	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/store/backup"
)

// finish runs the switch from wherever it stopped: each phase is
// recorded before it starts and every step in it can run again.
func (m *migration) finish(ctx context.Context) error {
	phases := []struct {
		name string
		run  func(context.Context) error
	}{
		{phaseMoveOld, m.moveOld},
		{phaseMoveNew, m.moveNew},
		{phaseConfigure, m.configure},
		{phaseCleanup, m.cleanup},
	}
	started := false
	for i, p := range phases {
		if p.name == m.state.Phase {
			started = true
		}
		if !started {
			continue
		}
		if err := p.run(ctx); err != nil {
			return err
		}
		if i+1 < len(phases) {
			if err := m.setPhase(phases[i+1].name); err != nil {
				return err
			}
		}
	}
	if !started {
		return fmt.Errorf("migration state in %s names an unknown phase %q", m.work, m.state.Phase)
	}
	return nil
}

// moveOld unmounts the old store's containers and moves its files into
// the workspace; from here until moveNew ends the store is unusable.
func (m *migration) moveOld(ctx context.Context) error {
	m.step("switching: moving the old %s store aside", m.state.From)
	if _, err := store.UnmountUnder(m.root, m.work); err != nil {
		return err
	}
	if err := os.MkdirAll(m.path("old"), 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(m.root)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() == WorkDir {
			continue
		}
		if err := os.Rename(filepath.Join(m.root, e.Name()), m.path("old", e.Name())); err != nil {
			return fmt.Errorf("moving the old store aside: %w", err)
		}
	}
	if err := syncDirs(m.root, m.path("old")); err != nil {
		return err
	}
	m.fault("mid-switch")
	return nil
}

// moveNew moves the new store's files into the root.
func (m *migration) moveNew(ctx context.Context) error {
	m.step("switching: moving the new %s store into %s", m.state.To, m.root)
	entries, err := os.ReadDir(m.path("new"))
	if err != nil {
		return err
	}
	for _, e := range entries {
		dst := filepath.Join(m.root, e.Name())
		if _, err := os.Lstat(dst); err == nil {
			return fmt.Errorf("%s appeared during the migration (did another kiln process run?): move it away and run the migration again", dst)
		}
		if err := os.Rename(m.path("new", e.Name()), dst); err != nil {
			return fmt.Errorf("moving the new store in: %w", err)
		}
	}
	if err := syncDirs(m.root, m.path("new")); err != nil {
		return err
	}
	m.fault("after-switch")
	return nil
}

// configure points storage.conf at the new driver, then opens the new
// store in its place and mounts again what was mounted.
func (m *migration) configure(ctx context.Context) error {
	if err := storageconf.SetConfigDriver(m.o.ConfigPath, m.state.To); err != nil {
		return err
	}
	m.fault("after-config")
	o := m.o.Store
	o.Driver = m.state.To
	st, err := store.Open(ctx, o)
	if err != nil {
		return fmt.Errorf("opening the new store: %w", err)
	}
	defer st.Close()
	idx, err := backup.ReadIndex(m.path("export"))
	if err != nil {
		return err
	}
	for _, c := range idx.Containers {
		if c.MountCount == 0 {
			continue
		}
		if cur, err := st.Container(ctx, c.ID); err == nil && cur.MountCount > 0 {
			continue
		}
		if err := st.RestoreMount(ctx, c.ID, c.MountCount); err != nil {
			return fmt.Errorf("mounting container %s again: %w", c.Name, err)
		}
	}
	return st.Close()
}

// cleanup removes (or keeps, renamed) the old store, then the workspace.
func (m *migration) cleanup(ctx context.Context) error {
	old := m.path("old")
	if _, err := os.Stat(old); err == nil {
		if m.o.KeepOld {
			kept := filepath.Join(m.root, ".kiln-old-"+m.state.From+"-"+strconv.FormatInt(time.Now().Unix(), 10))
			if err := os.Rename(old, kept); err != nil {
				return err
			}
			m.rep.OldKept = kept
		} else {
			m.step("removing the old %s store", m.state.From)
			if _, err := store.Reset(ctx, store.Options{Root: old, DriverOpts: m.o.Store.DriverOpts}); err != nil {
				return fmt.Errorf("removing the old store: %w", err)
			}
		}
	}
	return os.RemoveAll(m.work)
}

func syncDirs(dirs ...string) error {
	for _, dir := range dirs {
		if err := digestio.SyncDir(dir); err != nil {
			return err
		}
	}
	return nil
}
