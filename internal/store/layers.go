package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/internal/store/driver"
)

// Layer is one complete layer: a driver snapshot named by its chain ID.
type Layer struct {
	ID      string // chain ID, hex; also the snapshot id
	Parent  string
	DiffID  digest.Digest
	Size    int64 // bytes of the uncompressed layer tar
	Created time.Time
	// MTimeBound, when set, clamps file times whenever the layer's tar is
	// produced, so that it always hashes to DiffID.
	MTimeBound *time.Time
}

// ChainID computes the OCI chain ID of a layer with diffID on parent.
func ChainID(parent string, diffID digest.Digest) string {
	if parent == "" {
		return diffID.Encoded()
	}
	return digest.FromString("sha256:" + parent + " " + string(diffID)).Encoded()
}

const layerCols = `id, parent, diff_id, size, created, mtime_bound`

func scanLayer(row interface{ Scan(...any) error }) (Layer, error) {
	var l Layer
	var created int64
	var bound sql.NullInt64
	if err := row.Scan(&l.ID, &l.Parent, &l.DiffID, &l.Size, &created, &bound); err != nil {
		return Layer{}, err
	}
	l.Created = time.Unix(0, created)
	if bound.Valid {
		t := time.Unix(bound.Int64, 0).UTC()
		l.MTimeBound = &t
	}
	return l, nil
}

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
// top of parent from r (any compression), unless it exists already. A
// tar that does not match diffID is refused and leaves nothing behind.
func (s *Store) ApplyLayer(ctx context.Context, parent string, diffID digest.Digest, r io.Reader) (Layer, error) {
	if err := diffID.Validate(); err != nil {
		return Layer{}, fmt.Errorf("layer diff ID %q: %w", diffID, err)
	}
	id := ChainID(parent, diffID)
	if l, err := s.Layer(ctx, id); err == nil {
		_, _ = io.Copy(io.Discard, r)
		return l, nil
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

func (s *Store) fillLayer(ctx context.Context, id, parent string, diffID digest.Digest, r io.Reader) (int64, error) {
	if err := s.driver.Create(ctx, id, parent); err != nil {
		return 0, fmt.Errorf("creating layer %s: %w", id, err)
	}
	rc, err := uncompressed(r)
	if err != nil {
		return 0, fmt.Errorf("layer %s: %w", diffID, err)
	}
	defer rc.Close()
	h := newCountingHash()
	if _, err := s.driver.ApplyDiff(ctx, id, io.TeeReader(rc, h)); err != nil {
		return 0, err
	}
	if _, err := io.Copy(h, rc); err != nil {
		return 0, err
	}
	if got := h.digest(); got != diffID {
		return 0, fmt.Errorf("layer %s: %w (uncompressed content hashes to %s)", diffID, ErrDigestMismatch, got)
	}
	return h.n, nil
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
		case state == "incomplete" && alive(own) && own != owner:
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
		_, err = tx.ExecContext(ctx, `INSERT INTO layers(id, parent, diff_id, size, state, owner, promote_from, mtime_bound, created) VALUES(?,?,?,?,?,?,?,?,?)`,
			l.ID, l.Parent, l.DiffID, l.Size, "incomplete", owner, promoteFrom, bound, time.Now().UnixNano())
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
	return s.db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM layers WHERE id=? AND state='incomplete'`, id)
		return err
	})
}

// LayerDiff writes the layer's uncompressed tar to w and checks that it
// still hashes to the layer's diff ID.
func (s *Store) LayerDiff(ctx context.Context, l Layer, w io.Writer) error {
	h := newCountingHash()
	if err := s.driver.Diff(ctx, l.ID, io.MultiWriter(w, h), driver.DiffOptions{ModTimeUpperBound: l.MTimeBound}); err != nil {
		return fmt.Errorf("reading layer %s: %w", l.DiffID, err)
	}
	if got := h.digest(); got != l.DiffID {
		return fmt.Errorf("layer %s on disk: %w (now hashes to %s): the layer was modified; run `kiln storage check`", l.DiffID, ErrDigestMismatch, got)
	}
	return nil
}

// LayerBlob is a compressed form of a layer kept in the blob store.
type LayerBlob struct {
	Digest    digest.Digest
	MediaType string
	Size      int64
}

// LayerBlobs lists the compressed blobs known for a layer.
func (s *Store) LayerBlobs(ctx context.Context, layerID string) ([]LayerBlob, error) {
	rows, err := s.db.sql.QueryContext(ctx, `SELECT digest, media_type, size FROM layer_blobs WHERE layer_id=?`, layerID)
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

// AddLayerBlob records that blob b (already stored) is a compressed form
// of the layer.
func (s *Store) AddLayerBlob(ctx context.Context, layerID string, b LayerBlob) error {
	return s.db.tx(ctx, func(tx *sql.Tx) error {
		if !s.HasBlob(b.Digest) { // removed by a concurrent image removal
			return fmt.Errorf("%w: %s (removed while it was being recorded; try again)", ErrBlobUnknown, b.Digest)
		}
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO layer_blobs(layer_id, digest, media_type, size) VALUES(?,?,?,?)`, layerID, b.Digest, b.MediaType, b.Size)
		return err
	})
}

// LayerByBlob finds the layer a compressed blob or a diff ID belongs to.
func (s *Store) LayerByBlob(ctx context.Context, d digest.Digest) (Layer, error) {
	var id string
	err := s.db.sql.QueryRowContext(ctx, `SELECT layer_id FROM layer_blobs WHERE digest=? UNION ALL SELECT id FROM layers WHERE diff_id=? AND state='complete' LIMIT 1`, d, d).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return Layer{}, fmt.Errorf("%w: %s", ErrBlobUnknown, d)
	}
	if err != nil {
		return Layer{}, err
	}
	return s.Layer(ctx, id)
}
