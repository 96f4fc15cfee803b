package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	digest "github.com/opencontainers/go-digest"
)

// ImageRemoval is what RemoveImages changes at once.
type ImageRemoval struct {
	// Names are taken off the images that have them; the images stay.
	Names []string
	// IDs are full IDs of images deleted with all their names.
	IDs []string
}

// RemoveImages takes the names off and deletes the images in one
// transaction, so that a listing sees all of it or none, then removes the
// layers and blobs nothing uses any more (once, however many images
// went). It changes nothing when a name is on no image or an image is
// gone (ErrImageUnknown), or a container uses an image (ErrImageInUse).
// Safe while other kiln processes work.
func (s *Store) RemoveImages(ctx context.Context, r ImageRemoval) error {
	var blobs []digest.Digest
	err := s.db.tx(ctx, func(tx *sql.Tx) error {
		for _, name := range r.Names {
			res, err := tx.ExecContext(ctx, `DELETE FROM names WHERE name=?`, name)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return fmt.Errorf("%w: %s", ErrImageUnknown, name)
			}
		}
		for _, id := range r.IDs {
			b, err := s.deleteImageRows(ctx, tx, id)
			if err != nil {
				return err
			}
			blobs = append(blobs, b...)
		}
		return nil
	})
	if err != nil || len(r.IDs) == 0 {
		return err
	}
	s.removeUnusedBlobs(ctx, blobs)
	return s.GC(ctx)
}

// deleteImageRows removes the rows of image id and its names inside tx and
// returns its config and manifest digests, whose blobs (and the image's
// layers) are left to the caller; they are pending until then, so that a
// process killed before it collects them leaves them to the next one
// (pending.go). It refuses while a container uses the image.
func (s *Store) deleteImageRows(ctx context.Context, tx *sql.Tx, id string) ([]digest.Digest, error) {
	img, err := scanImage(tx.QueryRowContext(ctx, `SELECT `+imageCols+` FROM images WHERE id=?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", ErrImageUnknown, id)
	}
	if err != nil {
		return nil, err
	}
	var ctr string
	if err := tx.QueryRowContext(ctx, `SELECT name FROM containers WHERE image_id=? LIMIT 1`, id).Scan(&ctr); err == nil {
		return nil, fmt.Errorf("image %s: %w %q", id[:12], ErrImageInUse, ctr)
	}
	for _, q := range []string{`DELETE FROM names WHERE image_id=?`, `DELETE FROM images WHERE id=?`} {
		if _, err := tx.ExecContext(ctx, q, id); err != nil {
			return nil, err
		}
	}
	if err := deleteManifestExtras(ctx, tx, img.ManifestDigest); err != nil {
		return nil, err
	}
	blobs := []digest.Digest{img.ConfigDigest(), img.ManifestDigest}
	return blobs, s.markPending(ctx, tx, blobs...)
}
