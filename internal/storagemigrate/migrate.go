// Package storagemigrate moves a store to another storage driver without
// losing images or working containers: an export with the writers kept
// out, an import into a new store beside the old one, a check, and only
// then the switch. Every phase is recorded before it starts, so a
// migration killed at any point is finished by running it again.
package storagemigrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kiln-build/kiln/internal/digestio"
	"github.com/kiln-build/kiln/internal/storageconf"
	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/store/backup"
)

// WorkDir is the migration's workspace inside the store root: the
// export, the new store and, while switching, the old one. It lives in
// the root so that every rename stays on one filesystem, also when the
// root is the mount point of a dedicated device.
const WorkDir = ".kiln-migrate"

// Migration phases, persisted in WorkDir/state.json before each step.
const (
	phaseCopy      = "copy"      // export, import, check: redone from the start on a rerun
	phaseMoveOld   = "move-old"  // moving the old store aside
	phaseMoveNew   = "move-new"  // moving the new store in
	phaseConfigure = "configure" // storage.conf, remounts
	phaseCleanup   = "cleanup"   // removing the old store and the export
)

// Options say what to migrate to.
type Options struct {
	// Store is the store as it is opened today.
	Store store.Options
	// To is the driver to move to.
	To string
	// ConfigPath is storage.conf, whose driver key is changed ("" or a
	// missing file: nothing to change, the store records its driver).
	ConfigPath string
	// KeepOld keeps the old store in WorkDir/old instead of removing it.
	KeepOld bool
	// Progress receives the export's and import's progress.
	Progress backup.Progress
	// Step is told each step as it starts, for plain-text output.
	Step func(msg string)
	// Fault is a test hook called at named points ("after-export", ...).
	Fault func(point string)
}

// Report says what a migration did.
type Report struct {
	From, To                  string
	Images, Containers, Layer int
	Bytes                     int64 // of the export
	Resumed                   bool
	OldKept                   string
	Took                      time.Duration
}

type migrateState struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Phase string `json:"phase"`
}

type migration struct {
	o          Options
	root, work string
	state      migrateState
	rep        Report
}

func (m *migration) path(p ...string) string {
	return filepath.Join(append([]string{m.work}, p...)...)
}

func (m *migration) step(format string, args ...any) {
	if m.o.Step != nil {
		m.o.Step(fmt.Sprintf(format, args...))
	}
}

func (m *migration) fault(point string) {
	if m.o.Fault != nil {
		m.o.Fault(point)
	}
}

// Migrate moves the store to another driver without losing anything:
// export, a new store beside the old one, import, check, and only then
// the switch (renames and storage.conf). The old store stays in place
// and in use until the new one checks out; a migration killed at any
// point is finished or restarted by running Migrate again. No other
// kiln process may write to the store meanwhile: its writers are locked
// out while the store is copied.
func Migrate(ctx context.Context, o Options) (Report, error) {
	start := time.Now()
	to, err := storageconf.NormalizeDriver(o.To)
	if err != nil {
		return Report{}, err
	}
	o.To = to
	m := &migration{o: o, root: o.Store.Root, work: filepath.Join(o.Store.Root, WorkDir)}
	if err := m.loadState(); err != nil {
		return m.rep, err
	}
	if m.state.Phase == "" || m.state.Phase == phaseCopy {
		if err := m.copyStore(ctx); err != nil {
			return m.rep, err
		}
	}
	if err := m.finish(ctx); err != nil {
		return m.rep, err
	}
	m.rep.From, m.rep.To, m.rep.Took = m.state.From, m.state.To, time.Since(start)
	return m.rep, nil
}

// loadState reads where an earlier run stopped.
func (m *migration) loadState() error {
	b, err := os.ReadFile(m.path("state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &m.state); err != nil {
		return fmt.Errorf("reading %s: %w", m.path("state.json"), err)
	}
	m.rep.Resumed = true
	if m.state.Phase != phaseCopy && m.state.To != m.o.To {
		return fmt.Errorf("a migration to driver %s is half switched in %s: run `kiln storage migrate --driver %s` to finish it first", m.state.To, m.root, m.state.To)
	}
	m.step("resuming the migration from %s to %s (stopped in phase %s)", m.state.From, m.state.To, m.state.Phase)
	return nil
}

func (m *migration) setPhase(p string) error {
	m.state.Phase = p
	b, err := json.Marshal(m.state)
	if err != nil {
		return err
	}
	return digestio.WriteFileAtomic(m.path("state.json"), b, 0o600)
}

// copyStore exports the old store (writers locked out), imports into a
// fresh new store and checks it. The old store is not changed.
func (m *migration) copyStore(ctx context.Context) error {
	old, err := store.Open(ctx, m.o.Store)
	if err != nil {
		return fmt.Errorf("opening the store to migrate: %w", err)
	}
	defer old.Close()
	from := old.Driver().Name()
	if from == m.o.To && m.state.Phase == "" {
		return fmt.Errorf("store %s already uses driver %s", m.root, from)
	}
	m.state = migrateState{From: from, To: m.o.To}
	if err := os.MkdirAll(m.work, 0o700); err != nil {
		return err
	}
	if err := m.setPhase(phaseCopy); err != nil {
		return err
	}
	frozen, err := backup.Freeze(ctx, old, fmt.Sprintf("kiln storage migrate --driver %s", m.o.To))
	if err != nil {
		return err
	}
	defer frozen.Thaw()
	idx, err := m.export(ctx, frozen)
	if err != nil {
		return err
	}
	if err := m.importAndCheck(ctx, idx); err != nil {
		// The old store is untouched; give the new one's space back.
		_, rerr := store.Reset(context.WithoutCancel(ctx), m.newOptions())
		return errors.Join(err, rerr, os.RemoveAll(m.path("new")))
	}
	// From here on the new store is the truth; the old one is closed
	// before it is moved.
	if err := frozen.Thaw(); err != nil {
		return err
	}
	if err := old.Close(); err != nil {
		return err
	}
	return m.setPhase(phaseMoveOld)
}

func (m *migration) export(ctx context.Context, old *backup.Frozen) (*backup.Index, error) {
	m.step("exporting the %s store %s", m.state.From, m.root)
	idx, err := old.Export(ctx, m.path("export"), backup.ExportOptions{Progress: m.faultAfterFirst("mid-export")})
	if err != nil {
		return nil, fmt.Errorf("exporting the store: %w", err)
	}
	m.rep.Bytes = idx.Bytes()
	m.rep.Images, m.rep.Containers, m.rep.Layer = len(idx.Images), len(idx.Containers), len(idx.Layers)
	m.fault("after-export")
	return idx, nil
}

// faultAfterFirst passes progress on and calls the fault hook once the
// first item finished.
func (m *migration) faultAfterFirst(point string) backup.Progress {
	fired := false
	return func(e backup.ProgressEvent) {
		if m.o.Progress != nil {
			m.o.Progress(e)
		}
		if e.Finished && !fired {
			fired = true
			m.fault(point)
		}
	}
}

func (m *migration) newOptions() store.Options {
	o := m.o.Store
	o.Root, o.RunRoot, o.Driver = m.path("new"), m.path("run"), m.o.To
	return o
}

func (m *migration) importAndCheck(ctx context.Context, idx *backup.Index) error {
	// A new store left by an earlier run may miss what the old store
	// gained since: start it afresh (the export above was resumed).
	if _, err := os.Stat(m.path("new")); err == nil {
		if _, err := store.Reset(ctx, m.newOptions()); err != nil {
			return err
		}
	}
	m.step("importing into a new %s store", m.o.To)
	st, err := store.Open(ctx, m.newOptions())
	if err != nil {
		return fmt.Errorf("making the new %s store: %w", m.o.To, err)
	}
	defer st.Close()
	if _, err := backup.Import(ctx, st, m.path("export"), backup.ImportOptions{Progress: m.faultAfterFirst("mid-import")}); err != nil {
		return fmt.Errorf("importing into the new store: %w", err)
	}
	m.fault("after-import")
	m.step("checking the new store")
	if err := backup.Verify(ctx, st, idx); err != nil {
		return fmt.Errorf("the new store does not hold everything the old one did (the old store is unchanged): %w", err)
	}
	rep, err := st.Check(ctx, store.CheckOptions{})
	if err != nil {
		return err
	}
	if n := rep.Remaining(); n > 0 {
		return fmt.Errorf("the new store has %d problems, first %s %s (the old store is unchanged)", n, rep.Problems[0].Kind, rep.Problems[0].Object)
	}
	m.fault("after-check")
	return st.Close()
}
