package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/internal/archive"
)

// Layer is one complete layer: its uncompressed tar is named by DiffID,
// and its ID is the chain ID of that tar on its parent. A layer exists as
// files (a driver snapshot), as a blob, or both: a pulled layer is only
// its blob until something needs its files (EnsureFiles), and a layer
// kiln made from a container's writes is only files until it is pushed.
type Layer struct {
	ID      string // chain ID, hex; also the snapshot id
	Parent  string
	DiffID  digest.Digest
	Size    int64 // bytes of the uncompressed layer tar
	Created time.Time
	// MTimeBound, when set, clamps file times whenever the layer's tar is
	// produced, so that it always hashes to DiffID.
	MTimeBound *time.Time
	// Files reports whether the layer's files exist as a snapshot.
	Files bool
	// Blob is the blob the layer arrived as (pulled, imported), which every
	// image that inherits the layer names; nil for a layer kiln made.
	Blob *LayerBlob
}

// ChainID computes the OCI chain ID of a layer with diffID on parent.
func ChainID(parent string, diffID digest.Digest) string {
	if parent == "" {
		return diffID.Encoded()
	}
	return digest.FromString("sha256:" + parent + " " + string(diffID)).Encoded()
}

const layerCols = `id, parent, diff_id, size, created, mtime_bound, files, blob_digest, blob_media_type, blob_size`

func scanLayer(row interface{ Scan(...any) error }) (Layer, error) {
	var l Layer
	var created int64
	var bound sql.NullInt64
	var files string
	var b LayerBlob
	if err := row.Scan(&l.ID, &l.Parent, &l.DiffID, &l.Size, &created, &bound, &files, &b.Digest, &b.MediaType, &b.Size); err != nil {
		return Layer{}, err
	}
	l.Created = time.Unix(0, created)
	if bound.Valid {
		t := time.Unix(bound.Int64, 0).UTC()
		l.MTimeBound = &t
	}
	l.Files = files == filesYes
	if b.Digest != "" {
		l.Blob = &b
	}
	return l, nil
}

// The files column: whether a layer's snapshot exists.
const (
	filesYes    = "yes"
	filesNo     = "no"
	filesMaking = "making" // files_owner is making them
)

// Layer returns a complete layer by id.
func (s *Store) Layer(ctx context.Context, id string) (Layer, error) {
	l, err := scanLayer(s.db.sql.QueryRowContext(ctx, `SELECT `+layerCols+` FROM layers WHERE id=? AND state='complete'`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Layer{}, fmt.Errorf("%w: %s", ErrLayerUnknown, id)
	}
	return l, err
}

// LayerChain returns layer id and its ancestors, bottom first.
func (s *Store) LayerChain(ctx context.Context, id string) ([]Layer, error) {
	var chain []Layer
	for cur := id; cur != ""; {
		l, err := s.Layer(ctx, cur)
		if err != nil {
			return nil, err
		}
		chain = append([]Layer{l}, chain...)
		cur = l.Parent
	}
	return chain, nil
}

// ApplyLayer makes the layer whose uncompressed tar hashes to diffID on
// top of parent from r (any compression), files and all, unless it
// exists already. A tar that does not match diffID is refused and leaves
// nothing behind.
func (s *Store) ApplyLayer(ctx context.Context, parent string, diffID digest.Digest, r io.Reader) (Layer, error) {
	if err := diffID.Validate(); err != nil {
		return Layer{}, fmt.Errorf("layer diff ID %q: %w", diffID, err)
	}
	id := ChainID(parent, diffID)
	if l, err := s.Layer(ctx, id); err == nil {
		_, _ = io.Copy(io.Discard, r)
		return l, nil
	}
	if s.snapshotsReadOnly {
		return Layer{}, refused("making", id)
	}
	if err := s.EnsureFiles(ctx, parent); err != nil {
		return Layer{}, err
	}
	if err := s.EnsureSpace(ctx, 0); err != nil {
		return Layer{}, err
	}
	existing, release, err := s.claimLayer(ctx, Layer{ID: id, Parent: parent, DiffID: diffID}, "")
	if err != nil {
		return Layer{}, err
	}
	defer release()
	if existing != nil {
		_, _ = io.Copy(io.Discard, r)
		return *existing, nil
	}
	size, err := s.fillLayer(ctx, id, parent, diffID, r)
	if err != nil {
		return Layer{}, errors.Join(s.noSpace(ctx, err), s.abandonLayer(context.WithoutCancel(ctx), id))
	}
	return s.completeLayer(ctx, id, size)
}

// fillLayer makes snapshot id on parent from the layer tar in r (any
// compression), checks that the tar hashes to diffID, and keeps its
// tar-split record, so that the very same tar can be rebuilt from the
// files later. It returns the tar's size.
func (s *Store) fillLayer(ctx context.Context, id, parent string, diffID digest.Digest, r io.Reader) (int64, error) {
	if err := s.driver.Create(ctx, id, parent); err != nil {
		return 0, fmt.Errorf("creating layer %s: %w", id, err)
	}
	rc, err := uncompressed(r)
	if err != nil {
		return 0, fmt.Errorf("layer %s: %w", diffID, err)
	}
	defer rc.Close()
	meta, err := s.newTarSplit()
	if err != nil {
		return 0, err
	}
	defer meta.discard()
	h := newCountingHash()
	tr, rec := archive.RecordTarSplit(io.TeeReader(rc, h), meta.f)
	_, err = s.driver.ApplyDiff(ctx, id, tr)
	if err == nil {
		_, err = io.Copy(io.Discard, tr)
	}
	if err != nil {
		rec.Abort()
		return 0, err
	}
	recErr := rec.Finish()
	if got := h.digest(); got != diffID {
		return 0, fmt.Errorf("layer %s: %w (uncompressed content hashes to %s)", diffID, ErrDigestMismatch, got)
	}
	if recErr != nil {
		// The files are right; only a rebuild of this tar from them is
		// not possible. The layer's blob, if any, still serves it.
		s.log.Warn("layer tar cannot be recorded for rebuilding", "layer", diffID, "error", recErr)
		return h.n, nil
	}
	return h.n, meta.keep(id)
}

// insertIncomplete records a layer about to be made, owned by this process.
func (s *Store) insertIncomplete(ctx context.Context, l Layer, promoteFrom string) error {
	return s.db.tx(ctx, func(tx *sql.Tx) error {
		var state, own string
		err := tx.QueryRowContext(ctx, `SELECT state, owner FROM layers WHERE id=?`, l.ID).Scan(&state, &own)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case state == "incomplete" && s.alive(own) && own != owner:
			return fmt.Errorf("%w: layer %s (%s)", errLayerBusy, l.ID, own)
		default:
			if _, err := tx.ExecContext(ctx, `DELETE FROM layers WHERE id=?`, l.ID); err != nil {
				return err
			}
		}
		var bound any
		if l.MTimeBound != nil {
			bound = l.MTimeBound.Unix()
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO layers(id, parent, diff_id, size, state, owner, promote_from, mtime_bound, created, files) VALUES(?,?,?,?,?,?,?,?,?,?)`,
			l.ID, l.Parent, l.DiffID, l.Size, "incomplete", owner, promoteFrom, bound, time.Now().UnixNano(), filesYes)
		return err
	})
}

func (s *Store) completeLayer(ctx context.Context, id string, size int64) (Layer, error) {
	err := s.db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE layers SET state='complete', owner='', promote_from='', size=? WHERE id=?`, size, id)
		return err
	})
	if err != nil {
		return Layer{}, err
	}
	return s.Layer(ctx, id)
}

// abandonLayer removes a layer this process failed to make.
func (s *Store) abandonLayer(ctx context.Context, id string) error {
	if err := s.driver.Remove(ctx, id); err != nil {
		return err
	}
	s.removeTarSplit(id)
	return s.db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM layers WHERE id=? AND state='incomplete'`, id)
		return err
	})
}

// LayerBlob is a compressed (or uncompressed) form of a layer kept in
// the blob store.
type LayerBlob struct {
	Digest    digest.Digest
	MediaType string
	Size      int64
}

// LayerBlobs lists the stored blobs of a layer, the one it came as first.
func (s *Store) LayerBlobs(ctx context.Context, layerID string) ([]LayerBlob, error) {
	rows, err := s.db.sql.QueryContext(ctx, `SELECT b.digest, b.media_type, b.size FROM layer_blobs b LEFT JOIN layers l ON l.id = b.layer_id
		WHERE b.layer_id=? ORDER BY (b.digest = l.blob_digest) DESC, b.digest`, layerID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []LayerBlob
	for rows.Next() {
		var b LayerBlob
		if err := rows.Scan(&b.Digest, &b.MediaType, &b.Size); err != nil {
			return nil, err
		}
		if s.HasBlob(b.Digest) {
			out = append(out, b)
		}
	}
	return out, rows.Err()
}

// AddLayerBlob records that blob b (already stored) is a form of the
// layer.
func (s *Store) AddLayerBlob(ctx context.Context, layerID string, b LayerBlob) error {
	return s.db.tx(ctx, func(tx *sql.Tx) error {
		if !s.HasBlob(b.Digest) { // removed by a concurrent image removal
			return fmt.Errorf("%w: %s (removed while it was being recorded; try again)", ErrBlobUnknown, b.Digest)
		}
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO layer_blobs(layer_id, digest, media_type, size) VALUES(?,?,?,?)`, layerID, b.Digest, b.MediaType, b.Size)
		return err
	})
}
