package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kiln-build/kiln/internal/digestio"
	digest "github.com/opencontainers/go-digest"
)

// A layer that arrives as a blob (a pull, an import) is recorded without
// files: it is complete as soon as its blob is stored and its content
// checked against its diff ID. Its files are made the first time
// something needs them (EnsureFiles: a container is mounted on it, a
// build step runs on it), once, by one process. While a process makes
// them the layer's files column is "making" and files_owner names that
// process; if it dies, the next process to open the store removes the
// half-made snapshot and the layer is a blob again.

// AddBlobLayer records the layer on parent whose tar is the stored blob b
// decompressed. The caller has checked that the blob's content hashes to
// diffID and is size bytes long uncompressed. The layer exists as the
// blob alone until EnsureFiles; if it exists already, b becomes one more
// blob of it. The layer is held for this process (Hold) until Release,
// so that a concurrent GC cannot take it before an image names it.
func (s *Store) AddBlobLayer(ctx context.Context, parent string, diffID digest.Digest, size int64, b LayerBlob) (Layer, error) {
	if err := diffID.Validate(); err != nil {
		return Layer{}, fmt.Errorf("layer diff ID %q: %w", diffID, err)
	}
	id := ChainID(parent, diffID)
	delay := 20 * time.Millisecond
	for {
		err := s.db.tx(ctx, func(tx *sql.Tx) error { return s.addBlobLayer(ctx, tx, id, parent, diffID, size, b) })
		if !errors.Is(err, errLayerBusy) {
			if err != nil {
				return Layer{}, fmt.Errorf("recording layer %s: %w", diffID, err)
			}
			return s.Layer(ctx, id)
		}
		select {
		case <-ctx.Done():
			return Layer{}, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

func (s *Store) addBlobLayer(ctx context.Context, tx *sql.Tx, id, parent string, diffID digest.Digest, size int64, b LayerBlob) error {
	if !s.HasBlob(b.Digest) { // removed by a concurrent image removal
		return fmt.Errorf("%w: %s (removed while it was being recorded; try again)", ErrBlobUnknown, b.Digest)
	}
	if parent != "" {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM layers WHERE id=? AND state='complete'`, parent).Scan(&one); err != nil {
			return fmt.Errorf("parent %w: %s", ErrLayerUnknown, parent)
		}
	}
	var state, own string
	err := tx.QueryRowContext(ctx, `SELECT state, owner FROM layers WHERE id=?`, id).Scan(&state, &own)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return err
	case state == "complete":
	case s.alive(own):
		// Being made or removed by a live process: wait for it.
		return fmt.Errorf("%w: layer %s (%s)", errLayerBusy, id, own)
	default:
		// A dead process's leftover: its files are removed when the
		// layer's files are next made.
		if _, err := tx.ExecContext(ctx, `DELETE FROM layers WHERE id=?`, id); err != nil {
			return err
		}
		state = ""
	}
	if state != "complete" {
		_, err := tx.ExecContext(ctx, `INSERT INTO layers(id, parent, diff_id, size, state, created, files, blob_digest, blob_media_type, blob_size)
			VALUES(?,?,?,?,'complete',?,?,?,?,?)`, id, parent, diffID, size, time.Now().UnixNano(), filesNo, b.Digest, b.MediaType, b.Size)
		if err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO layer_blobs(layer_id, digest, media_type, size) VALUES(?,?,?,?)`, id, b.Digest, b.MediaType, b.Size); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT OR IGNORE INTO layer_holds(layer_id, owner) VALUES(?,?)`, id, owner)
	return err
}

// Release drops this process's holds on layers (see AddBlobLayer): call
// it once an image or container names them, or the work is abandoned.
func (s *Store) Release(ctx context.Context, ids ...string) error {
	return s.db.tx(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `DELETE FROM layer_holds WHERE layer_id=? AND owner=?`, id, owner); err != nil {
				return err
			}
		}
		return nil
	})
}

// EnsureFiles makes the files of layer id and of every layer below it
// that exists only as a blob. It is idempotent and safe to call from
// several processes at once: each layer is made once, by one of them,
// while the others wait.
func (s *Store) EnsureFiles(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	chain, err := s.LayerChain(ctx, id)
	if err != nil {
		return err
	}
	for _, l := range chain {
		if l.Files {
			continue
		}
		if s.snapshotsReadOnly {
			return refused("making the files of", l.ID)
		}
		if err := s.makeFiles(ctx, l); err != nil {
			return fmt.Errorf("unpacking layer %s: %w", l.DiffID, err)
		}
	}
	return nil
}

// filesLocks serialise the goroutines of this process that make the
// files of the same layer.
var filesLocks sync.Map // layer ID -> *sync.Mutex

// makeFiles makes the snapshot of a layer that exists as a blob.
func (s *Store) makeFiles(ctx context.Context, l Layer) error {
	mu, _ := filesLocks.LoadOrStore(l.ID, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	mine, err := s.claimFiles(ctx, l.ID)
	if err != nil || !mine {
		return err
	}
	bg := context.WithoutCancel(ctx)
	fail := func(err error) error {
		return errors.Join(s.noSpace(ctx, err), s.dropFiles(bg, l.ID))
	}
	if err := s.EnsureSpace(ctx, l.Size); err != nil {
		return fail(err)
	}
	blob, err := s.openLayerBlob(ctx, l)
	if err != nil {
		return fail(err)
	}
	defer blob.Close()
	// A dead process may have left a half-made snapshot.
	if err := s.driver.Remove(ctx, l.ID); err != nil {
		return fail(err)
	}
	if _, err := s.fillLayer(ctx, l.ID, l.Parent, l.DiffID, blob); err != nil {
		return fail(err)
	}
	err = s.db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE layers SET files=?, files_owner='' WHERE id=?`, filesYes, l.ID)
		return err
	})
	if err != nil {
		return fail(err)
	}
	if blob.digest == l.DiffID && s.hasTarSplit(l.ID) {
		// An uncompressed blob repeats the files byte for byte: the files
		// and the tar-split record rebuild it.
		s.forgetLayerBlob(bg, l.ID, blob.digest)
	}
	return nil
}

// claimFiles marks the layer's files as being made by this process. It
// returns false when they exist already; it waits while another live
// process makes them.
func (s *Store) claimFiles(ctx context.Context, id string) (bool, error) {
	delay := 20 * time.Millisecond
	for {
		var mine bool
		err := s.db.tx(ctx, func(tx *sql.Tx) error {
			var files, own string
			err := tx.QueryRowContext(ctx, `SELECT files, files_owner FROM layers WHERE id=? AND state='complete'`, id).Scan(&files, &own)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: %s", ErrLayerUnknown, id)
			}
			switch {
			case err != nil:
				return err
			case files == filesYes:
				return nil
			case files == filesMaking && own != owner && s.alive(own):
				return errLayerBusy
			}
			mine = true
			_, err = tx.ExecContext(ctx, `UPDATE layers SET files=?, files_owner=? WHERE id=?`, filesMaking, owner, id)
			return err
		})
		if !errors.Is(err, errLayerBusy) {
			return mine, err
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

// dropFiles removes a layer's half-made snapshot and marks it a blob
// again.
func (s *Store) dropFiles(ctx context.Context, id string) error {
	if err := s.driver.Remove(ctx, id); err != nil {
		return err
	}
	s.removeTarSplit(id)
	return s.db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE layers SET files=?, files_owner='' WHERE id=? AND files=?`, filesNo, id, filesMaking)
		return err
	})
}

// forgetLayerBlob forgets one blob of a layer and removes it when
// nothing else names it.
func (s *Store) forgetLayerBlob(ctx context.Context, id string, d digest.Digest) {
	if err := s.dropLayerBlob(ctx, id, d); err == nil {
		s.removeUnusedBlobs(ctx, []digest.Digest{d})
	}
}

// layerBlob is an open stored blob of a layer.
type layerBlob struct {
	*os.File
	digest digest.Digest
}

// openLayerBlob opens a stored blob of the layer: its uncompressed tar
// when stored, else the blob it came as, else any other.
func (s *Store) openLayerBlob(ctx context.Context, l Layer) (layerBlob, error) {
	cands := []digest.Digest{l.DiffID}
	blobs, err := s.LayerBlobs(ctx, l.ID)
	if err != nil {
		return layerBlob{}, err
	}
	for _, b := range blobs {
		cands = append(cands, b.Digest)
	}
	for _, d := range cands {
		f, err := s.OpenBlob(d)
		if err == nil {
			return layerBlob{File: f, digest: d}, nil
		}
		if !errors.Is(err, ErrBlobUnknown) {
			return layerBlob{}, err
		}
	}
	return layerBlob{}, fmt.Errorf("%w: layer %s has no stored blob", ErrLayerContentLost, l.DiffID)
}

// Tar-split records live in ROOT/tarsplit/ID, one per layer with files.

func (s *Store) tarSplitPath(id string) string { return filepath.Join(s.root, "tarsplit", id) }

func (s *Store) hasTarSplit(id string) bool {
	_, err := os.Stat(s.tarSplitPath(id))
	return err == nil
}

func (s *Store) removeTarSplit(id string) { _ = os.Remove(s.tarSplitPath(id)) }

// pendingTarSplit is a record being written to a temp file.
type pendingTarSplit struct {
	s *Store
	f *digestio.File
}

func (s *Store) newTarSplit() (*pendingTarSplit, error) {
	f, err := digestio.CreateTemp(filepath.Join(s.root, "tmp"), tmpPrefix()+"tarsplit-")
	if err != nil {
		return nil, s.noSpace(context.Background(), err)
	}
	return &pendingTarSplit{s: s, f: f}, nil
}

// keep puts the record in place as layer id's, atomically.
func (p *pendingTarSplit) keep(id string) error {
	if err := p.f.Commit(p.s.tarSplitPath(id)); err != nil {
		return fmt.Errorf("keeping tar layout of layer %s: %w", id, err)
	}
	return nil
}

// discard removes the temp file unless keep moved it.
func (p *pendingTarSplit) discard() {
	if p == nil {
		return
	}
	p.f.Abort()
}

// openTarSplit opens layer id's record.
func (s *Store) openTarSplit(id string) (io.ReadCloser, error) {
	return os.Open(s.tarSplitPath(id))
}
