package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/internal/image"
)

// A layer kiln makes from a tar stream (a COPY or ADD in a build) is kept
// as the stream itself: an uncompressed blob, hashed as it is written for
// the layer's diff ID, and recorded without files. Its files are made the
// first time something needs them (EnsureFiles, as for a pulled layer),
// and then the blob is dropped: the files and the tar-split record taken
// while making them rebuild the very same tar. Unlike a pulled layer, such
// a layer names no blob it "came as" (Layer.Blob is nil): a push
// compresses it like any layer kiln made.

// AddTarLayer stores the uncompressed layer tar read from r as a blob and
// records it as the layer on parent that this tar makes, without making
// its files. When that layer exists already the blob is only one more
// form of it (dropped again when the layer has files). The layer is held
// for this process, as AddBlobLayer holds it, until Release.
func (s *Store) AddTarLayer(ctx context.Context, parent string, r io.Reader) (Layer, error) {
	d, n, err := s.PutBlob(ctx, "", r)
	if err != nil {
		return Layer{}, fmt.Errorf("storing layer tar: %w", err)
	}
	return s.addMadeLayer(ctx, parent, d, n)
}

// RebaseLayer records on parent a layer whose tar is l's (same diff ID,
// another chain ID), without files: the layer a COPY --link made, placed
// on whatever is now below it. It shares l's uncompressed blob when that
// is stored, and otherwise stores l's tar (rebuilt from its files) once.
// The new layer is held for this process until Release.
func (s *Store) RebaseLayer(ctx context.Context, parent string, l Layer) (Layer, error) {
	if l.Parent == parent {
		if _, err := s.hold(ctx, l.ID); err != nil {
			return Layer{}, err
		}
		return l, nil
	}
	if s.HasBlob(l.DiffID) {
		nl, err := s.addMadeLayer(ctx, parent, l.DiffID, l.Size)
		if !errors.Is(err, ErrBlobUnknown) { // else dropped meanwhile: make it again
			return nl, err
		}
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(s.LayerTar(ctx, l, pw)) }()
	nl, err := s.AddTarLayer(ctx, parent, pr)
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return Layer{}, err
	}
	if nl.DiffID != l.DiffID {
		return Layer{}, fmt.Errorf("rebasing layer %s: %w (its tar now hashes to %s)", l.DiffID, ErrDigestMismatch, nl.DiffID)
	}
	return nl, nil
}

// hold holds an existing complete layer for this process (see Release)
// and reports whether this process held it already.
func (s *Store) hold(ctx context.Context, id string) (had bool, err error) {
	err = s.db.tx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM layers WHERE id=? AND state='complete'`, id).Scan(&one); err != nil {
			return fmt.Errorf("%w: %s", ErrLayerUnknown, id)
		}
		res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO layer_holds(layer_id, owner) VALUES(?,?)`, id, owner)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		had = n == 0
		return err
	})
	return had, err
}

// addMadeLayer records the layer on parent whose uncompressed tar is the
// stored blob diffID, as AddBlobLayer does, but as a layer kiln made:
// it names no blob it came as.
func (s *Store) addMadeLayer(ctx context.Context, parent string, diffID digest.Digest, size int64) (Layer, error) {
	id := ChainID(parent, diffID)
	b := LayerBlob{Digest: diffID, MediaType: image.MediaTypeOCILayer, Size: size}
	delay := 20 * time.Millisecond
	for {
		err := s.db.tx(ctx, func(tx *sql.Tx) error { return s.insertMadeLayer(ctx, tx, id, parent, b) })
		if !errors.Is(err, errLayerBusy) {
			if err != nil {
				return Layer{}, fmt.Errorf("recording layer %s: %w", diffID, err)
			}
			break
		}
		select {
		case <-ctx.Done():
			return Layer{}, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
	l, err := s.Layer(ctx, id)
	if err != nil {
		return Layer{}, err
	}
	if l.Files && s.hasTarSplit(l.ID) {
		// The layer existed with its files: they rebuild this tar.
		s.forgetLayerBlob(context.WithoutCancel(ctx), l.ID, diffID)
	}
	return l, nil
}

func (s *Store) insertMadeLayer(ctx context.Context, tx *sql.Tx, id, parent string, b LayerBlob) error {
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
		return fmt.Errorf("%w: layer %s (%s)", errLayerBusy, id, own)
	default:
		if _, err := tx.ExecContext(ctx, `DELETE FROM layers WHERE id=?`, id); err != nil {
			return err
		}
		state = ""
	}
	hasBlob := s.HasBlob(b.Digest)
	if state != "complete" {
		if !hasBlob { // removed by a concurrent removal
			return fmt.Errorf("%w: %s (removed while it was being recorded; try again)", ErrBlobUnknown, b.Digest)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO layers(id, parent, diff_id, size, state, created, files) VALUES(?,?,?,?,'complete',?,?)`,
			id, parent, b.Digest, b.Size, time.Now().UnixNano(), filesNo)
		if err != nil {
			return err
		}
	}
	if hasBlob {
		// An existing layer gets its tar as one more blob, which makeFiles
		// or addMadeLayer drops again once it has files.
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO layer_blobs(layer_id, digest, media_type, size) VALUES(?,?,?,?)`, id, b.Digest, b.MediaType, b.Size); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, `INSERT OR IGNORE INTO layer_holds(layer_id, owner) VALUES(?,?)`, id, owner)
	return err
}
