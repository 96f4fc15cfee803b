package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/internal/archive"
	"github.com/kiln-build/kiln/internal/store/driver"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Container is a working container: a writable snapshot on an image's
// top layer, plus data the container package owns (its config).
type Container struct {
	ID         string
	Name       string
	ImageID    string
	Layer      string // the layer the writable snapshot sits on
	MountCount int
	Created    time.Time
	Data       []byte
}

const ctrCols = `id, name, image_id, layer, mount_count, created, data`

func scanContainer(row interface{ Scan(...any) error }) (Container, error) {
	var c Container
	var created int64
	err := row.Scan(&c.ID, &c.Name, &c.ImageID, &c.Layer, &c.MountCount, &created, &c.Data)
	c.Created = time.Unix(0, created)
	return c, err
}

// CreateContainer makes a working container named name on layer (""
// for scratch). The name must be free.
func (s *Store) CreateContainer(ctx context.Context, name, imageID, layer string, data []byte) (Container, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Container{}, err
	}
	id := hex.EncodeToString(b[:])
	if s.snapshotsReadOnly {
		return Container{}, fmt.Errorf("creating container %s: %w", name, refused("creating", id))
	}
	if err := s.EnsureSpace(ctx, 0); err != nil {
		return Container{}, err
	}
	err := s.db.tx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM containers WHERE name=?`, name).Scan(&one); err == nil {
			return fmt.Errorf("container name %q: %w", name, ErrNameInUse)
		}
		if layer != "" {
			if err := tx.QueryRowContext(ctx, `SELECT 1 FROM layers WHERE id=? AND state='complete'`, layer).Scan(&one); err != nil {
				return fmt.Errorf("%w: %s", ErrLayerUnknown, layer)
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO containers(id, name, image_id, layer, state, owner, created, data) VALUES(?,?,?,?,?,?,?,?)`,
			id, name, imageID, layer, "incomplete", owner, time.Now().UnixNano(), data)
		return err
	})
	if err != nil {
		return Container{}, err
	}
	if _, lazy := s.driver.(driver.ParentAtMount); !lazy {
		// The driver copies or snapshots the layer's files now.
		if err := s.EnsureFiles(ctx, layer); err != nil {
			return Container{}, errors.Join(fmt.Errorf("creating container %s: %w", name, err), s.removeContainerFiles(context.WithoutCancel(ctx), id))
		}
	}
	if err := s.driver.Create(ctx, id, layer); err != nil {
		return Container{}, errors.Join(fmt.Errorf("creating container %s: %w", name, s.noSpace(ctx, err)), s.removeContainerFiles(context.WithoutCancel(ctx), id))
	}
	if err := s.setState(ctx, id, "complete"); err != nil {
		return Container{}, err
	}
	return s.Container(ctx, id)
}

func (s *Store) setState(ctx context.Context, id, state string) error {
	return s.db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE containers SET state=?, owner=? WHERE id=?`, state, owner, id)
		return err
	})
}

// Container returns a container by full ID.
func (s *Store) Container(ctx context.Context, id string) (Container, error) {
	c, err := scanContainer(s.db.sql.QueryRowContext(ctx, `SELECT `+ctrCols+` FROM containers WHERE id=? AND state='complete'`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Container{}, fmt.Errorf("%w: %s", ErrContainerUnknown, id)
	}
	return c, err
}

// LookupContainer finds a container by name, full ID or unique ID prefix.
func (s *Store) LookupContainer(ctx context.Context, ref string) (Container, error) {
	c, err := scanContainer(s.db.sql.QueryRowContext(ctx, `SELECT `+ctrCols+` FROM containers WHERE name=? AND state='complete'`, ref))
	if err == nil {
		return c, nil
	}
	if len(ref) >= 3 && isHex(ref) {
		rows, err := s.db.sql.QueryContext(ctx, `SELECT `+ctrCols+` FROM containers WHERE id >= ? AND id < ? AND state='complete' LIMIT 2`, ref, ref+"g")
		if err != nil {
			return Container{}, err
		}
		defer rows.Close()
		var found []Container
		for rows.Next() {
			c, err := scanContainer(rows)
			if err != nil {
				return Container{}, err
			}
			found = append(found, c)
		}
		if len(found) == 1 {
			return found[0], nil
		}
		if len(found) > 1 {
			return Container{}, fmt.Errorf("%w %q: it matches several containers", ErrAmbiguous, ref)
		}
	}
	return Container{}, fmt.Errorf("%w: %s", ErrContainerUnknown, ref)
}

// Containers lists every container, oldest first.
func (s *Store) Containers(ctx context.Context) ([]Container, error) {
	rows, err := s.db.sql.QueryContext(ctx, `SELECT `+ctrCols+` FROM containers WHERE state='complete' ORDER BY created`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Container
	for rows.Next() {
		c, err := scanContainer(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ContainerNameTaken reports whether a container has that name.
func (s *Store) ContainerNameTaken(ctx context.Context, name string) (bool, error) {
	var one int
	err := s.db.sql.QueryRowContext(ctx, `SELECT 1 FROM containers WHERE name=?`, name).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// SetContainerData replaces the container's data (its config).
func (s *Store) SetContainerData(ctx context.Context, id string, data []byte) error {
	return s.updateContainer(ctx, id, `UPDATE containers SET data=? WHERE id=?`, data, id)
}

// RenameContainer gives the container a new, free name.
func (s *Store) RenameContainer(ctx context.Context, id, name string) error {
	if taken, err := s.ContainerNameTaken(ctx, name); err != nil || taken {
		if err == nil {
			err = fmt.Errorf("container name %q: %w", name, ErrNameInUse)
		}
		return err
	}
	return s.updateContainer(ctx, id, `UPDATE containers SET name=? WHERE id=?`, name, id)
}

func (s *Store) updateContainer(ctx context.Context, id, q string, args ...any) error {
	return s.db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			if sqlErr := (*sqlite.Error)(nil); errors.As(err, &sqlErr) && sqlErr.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE {
				return ErrNameInUse
			}
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: %s", ErrContainerUnknown, id)
		}
		return nil
	})
}

// Mount mounts the container's root filesystem, or counts one more user
// of an existing mount, and returns its path. Counts persist across
// processes.
func (s *Store) Mount(ctx context.Context, id string) (string, error) {
	c, err := s.Container(ctx, id)
	if err != nil {
		return "", err
	}
	// Layers that exist only as blobs get their files first, outside
	// the transaction: that is long work.
	if err := s.EnsureFiles(ctx, c.Layer); err != nil {
		return "", fmt.Errorf("mounting container %s: %w", c.Name, err)
	}
	var path string
	err = s.db.tx(ctx, func(tx *sql.Tx) error {
		var count int
		if err := tx.QueryRowContext(ctx, `SELECT mount_count FROM containers WHERE id=? AND state='complete'`, id).Scan(&count); err != nil {
			return fmt.Errorf("%w: %s", ErrContainerUnknown, id)
		}
		if m, _ := s.driver.Mounted(id); !m {
			count = 0
		}
		p, err := s.driver.Mount(ctx, id, false)
		if err != nil {
			return err
		}
		path = p
		_, err = tx.ExecContext(ctx, `UPDATE containers SET mount_count=? WHERE id=?`, count+1, id)
		return err
	})
	return path, err
}

// Unmount drops one user of the container's mount (all of them with
// force) and unmounts when none is left.
func (s *Store) Unmount(ctx context.Context, id string, force bool) error {
	return s.db.tx(ctx, func(tx *sql.Tx) error {
		var count int
		if err := tx.QueryRowContext(ctx, `SELECT mount_count FROM containers WHERE id=?`, id).Scan(&count); err != nil {
			return fmt.Errorf("%w: %s", ErrContainerUnknown, id)
		}
		if count > 0 {
			count--
		}
		if force {
			count = 0
		}
		if count == 0 {
			if err := s.driver.Unmount(ctx, id); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `UPDATE containers SET mount_count=? WHERE id=?`, count, id)
		return err
	})
}

// Mountpoint returns where the container is mounted, or "" when it is not.
func (s *Store) Mountpoint(ctx context.Context, c Container) string {
	if c.MountCount == 0 {
		return ""
	}
	if m, _ := s.driver.Mounted(c.ID); !m {
		return ""
	}
	p, err := s.driver.Mount(ctx, c.ID, false)
	if err != nil {
		return ""
	}
	return p
}

// DeleteContainer unmounts and removes the container and then whatever
// layers only it used.
func (s *Store) DeleteContainer(ctx context.Context, id string) error {
	if err := s.db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE containers SET state='removing', owner=? WHERE id=?`, owner, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: %s", ErrContainerUnknown, id)
		}
		return nil
	}); err != nil {
		return err
	}
	if err := s.finishPromotions(ctx, id); err != nil {
		return err
	}
	if err := s.removeContainerFiles(ctx, id); err != nil {
		return err
	}
	return s.GC(ctx)
}

// finishPromotions completes a commit of the container that failed after
// it began moving the container's writes into a layer (its context was
// cancelled, the disk filled), as recovery would: the layer's record
// names the container until then, and once the container's files are
// gone nothing could finish it and every later Open failed recovering it.
func (s *Store) finishPromotions(ctx context.Context, id string) error {
	rows, err := s.db.sql.QueryContext(ctx, `SELECT id, state FROM layers WHERE promote_from=? AND state != 'complete'`, id)
	if err != nil {
		return err
	}
	var pending [][2]string
	for rows.Next() {
		var l, state string
		if err := rows.Scan(&l, &state); err != nil {
			rows.Close()
			return err
		}
		pending = append(pending, [2]string{l, state})
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	for _, p := range pending {
		if err := s.recoverLayer(ctx, p[0], p[1], id); err != nil {
			return fmt.Errorf("finishing the commit of container %s into layer %s: %w", id, p[0], err)
		}
	}
	return nil
}

func (s *Store) removeContainerFiles(ctx context.Context, id string) error {
	if err := s.driver.Remove(ctx, id); err != nil {
		return fmt.Errorf("removing container %s: %w", id, err)
	}
	return s.db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM containers WHERE id=?`, id)
		return err
	})
}

// CommitOptions shape the layer a commit makes.
type CommitOptions struct {
	// MTimeBound clamps file times in the layer (reproducible builds).
	MTimeBound *time.Time
	// SkipEmpty makes no layer of a container without changes: the
	// commit fails with ErrNoChanges instead.
	SkipEmpty bool
}

// ErrNoChanges is returned by CommitLayer with SkipEmpty for a container
// that has no changes.
var ErrNoChanges = errors.New("the container has no changes")

// emptyTar is the diff ID of a layer with nothing in it: a tar of only
// its end (two zero blocks).
var emptyTar = digest.FromBytes(make([]byte, 1024))

// CommitLayer turns the container's writes into a new layer on the
// container's current layer, without copying them: the driver promotes
// the writable snapshot, and the container continues on top of the new
// layer (remounted at the same path if it was mounted). The diff is read
// once, to compute the diff ID.
func (s *Store) CommitLayer(ctx context.Context, id string, o CommitOptions) (Layer, error) {
	// A frozen store (an export) must not see the writes half moved.
	release, err := s.holdWriters(ctx)
	if err != nil {
		return Layer{}, err
	}
	defer release()
	c, err := s.Container(ctx, id)
	if err != nil {
		return Layer{}, err
	}
	h, meta, clamped, err := s.hashDiff(ctx, c, o)
	if err != nil {
		return Layer{}, err
	}
	defer meta.discard()
	if o.SkipEmpty && h.digest() == emptyTar {
		return Layer{}, ErrNoChanges
	}
	l := Layer{ID: ChainID(c.Layer, h.digest()), Parent: c.Layer, DiffID: h.digest(), Size: h.n, MTimeBound: o.MTimeBound}
	need := int64(0)
	if s.driver.Name() == "vfs" { // its promotion copies the whole tree
		need, _ = s.chainSize(ctx, c.Layer)
		need += h.n
	}
	if err := s.EnsureSpace(ctx, need); err != nil {
		return Layer{}, err
	}
	existing, release, err := s.claimLayer(ctx, l, id)
	if err != nil {
		return Layer{}, err
	}
	defer release()
	if existing != nil {
		err := s.rebase(ctx, c, existing.ID)
		if errors.Is(err, errBusy) {
			// Equal content exists: the container only moves onto it.
			err = s.updateContainer(ctx, id, `UPDATE containers SET layer=? WHERE id=?`, existing.ID, id)
		}
		return *existing, err
	}
	if err := s.updateContainer(ctx, id, `UPDATE containers SET promoting=? WHERE id=?`, l.ID, id); err != nil {
		return Layer{}, err
	}
	if meta != nil {
		// The record describes the tar just hashed; the promoted files
		// are the same files under the same names.
		if err := meta.keep(l.ID); err != nil {
			return Layer{}, errors.Join(err, s.abandonPromotion(context.WithoutCancel(ctx), l.ID, id))
		}
	}
	// The layer's tar has the clamped files at the --timestamp time: so
	// does the snapshot (before it becomes the layer: a crash leaves the
	// times set or the promotion not begun).
	if err := s.clampSnapshotTimes(c.ID, clamped, o.MTimeBound); err != nil {
		return Layer{}, errors.Join(err, s.abandonPromotion(context.WithoutCancel(ctx), l.ID, id))
	}
	remount, err := s.quiesce(ctx, c)
	if errors.Is(err, errBusy) {
		return s.copyCommit(ctx, c, l, o)
	}
	if err != nil {
		return Layer{}, errors.Join(err, s.abandonPromotion(context.WithoutCancel(ctx), l.ID, id))
	}
	if err := s.driver.Promote(ctx, id, l.ID); err != nil {
		return Layer{}, s.noSpace(ctx, err) // recovery finishes the promotion
	}
	// The writes have moved: the commit is finished even when ctx is
	// cancelled now (an interrupted build), or the container would point
	// at a layer that is not complete.
	ctx = context.WithoutCancel(ctx)
	done, err := s.completeLayer(ctx, l.ID, l.Size)
	if err != nil {
		return Layer{}, err
	}
	if err := s.updateContainer(ctx, id, `UPDATE containers SET layer=?, promoting='' WHERE id=?`, l.ID, id); err != nil {
		return Layer{}, err
	}
	return done, remount()
}

// hashDiff reads the container's changes once, as the layer tar a
// commit makes of them, and returns its digest and size with the
// tar-split record of that tar (nil when it could not be taken).
func (s *Store) hashDiff(ctx context.Context, c Container, o CommitOptions) (*countingHash, *pendingTarSplit, []string, error) {
	meta, err := s.newTarSplit()
	if err != nil {
		return nil, nil, nil, err
	}
	h := newCountingHash()
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(s.driver.Diff(ctx, c.ID, pw, driver.DiffOptions{ModTimeUpperBound: o.MTimeBound}))
	}()
	tr, rec := archive.RecordTarSplit(pr, meta.f)
	src := io.Reader(tr)
	var cn *clampedNames
	var clamped []string
	if o.MTimeBound != nil {
		cn = &clampedNames{bound: *o.MTimeBound}
		src = cn.tee(tr)
	}
	_, err = io.Copy(h, src)
	if cn != nil {
		clamped = cn.finish()
	}
	if err != nil {
		rec.Abort()
		pr.CloseWithError(err)
		meta.discard()
		return nil, nil, nil, fmt.Errorf("reading changes of container %s: %w", c.Name, err)
	}
	if err := rec.Finish(); err != nil {
		s.log.Warn("layer tar cannot be recorded for rebuilding", "container", c.Name, "error", err)
		meta.discard()
		return h, nil, clamped, nil
	}
	return h, meta, clamped, nil
}

// quiesce unmounts a mounted container for a promotion and returns how
// to mount it again at the same path.
func (s *Store) quiesce(ctx context.Context, c Container) (func() error, error) {
	m, _ := s.driver.Mounted(c.ID)
	if !m || s.driver.Name() == "vfs" {
		return func() error { return nil }, nil
	}
	if err := s.driver.Unmount(ctx, c.ID); err != nil {
		return nil, fmt.Errorf("container %s: %w: %w", c.Name, errBusy, err)
	}
	return func() error {
		_, err := s.driver.Mount(ctx, c.ID, false)
		return err
	}, nil
}

func (s *Store) abandonPromotion(ctx context.Context, layerID, ctrID string) error {
	return errors.Join(
		s.updateContainer(ctx, ctrID, `UPDATE containers SET promoting='' WHERE id=?`, ctrID),
		s.abandonLayer(ctx, layerID))
}

// rebase puts the container on an existing layer whose content equals
// the container's writes: they are dropped and the snapshot remade.
// The container is marked first (promoting = "rebase:LAYER", owned by
// this process), so that recovery finishes a rebase whose process died.
func (s *Store) rebase(ctx context.Context, c Container, layer string) error {
	remount, err := s.quiesce(ctx, c)
	if err != nil {
		return err
	}
	if err := s.updateContainer(ctx, c.ID, `UPDATE containers SET promoting=?, owner=? WHERE id=?`, rebasePrefix+layer, owner, c.ID); err != nil {
		return errors.Join(err, remount())
	}
	if err := s.finishRebase(ctx, c.ID, layer); err != nil {
		return err
	}
	return remount()
}

// rebasePrefix marks a container's promoting column during a rebase.
const rebasePrefix = "rebase:"

// finishRebase remakes the container's snapshot on layer and records it.
// It is idempotent, for recovery.
func (s *Store) finishRebase(ctx context.Context, id, layer string) error {
	if s.driver.Exists(id) {
		if err := s.driver.Remove(ctx, id); err != nil {
			return err
		}
	}
	if err := s.driver.Create(ctx, id, layer); err != nil {
		return err
	}
	return s.updateContainer(ctx, id, `UPDATE containers SET layer=?, promoting='' WHERE id=?`, layer, id)
}

// ContainerDiff writes the container's current changes as a layer tar.
// A process may be running in the container: files it removes while
// they are read are left out.
func (s *Store) ContainerDiff(ctx context.Context, id string, w io.Writer) error {
	return s.driver.Diff(ctx, id, w, driver.DiffOptions{Live: true})
}
