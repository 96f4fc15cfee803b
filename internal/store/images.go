package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/internal/image"
)

// Image is a stored image: its config digest is its ID.
type Image struct {
	ID             string // hex of the config digest
	TopLayer       string
	ManifestDigest digest.Digest
	ManifestType   string
	Names          []string
	Created        time.Time
	Size           int64
}

// ConfigDigest is the digest of the image's config blob.
func (i Image) ConfigDigest() digest.Digest { return digest.NewDigestFromEncoded(digest.SHA256, i.ID) }

// NewImage describes an image to record; its blobs go in with it.
type NewImage struct {
	TopLayer  string
	Config    []byte
	Manifest  []byte
	MediaType string
	Names     []string // full names; they move here from any other image
	Created   time.Time
	// Hold keeps the image from prune until this process calls
	// ReleaseImages or exits: a build's step image is unnamed, and until
	// the build caches or names it nothing else says it is wanted.
	Hold bool
}

// CreateImage stores the image's config and manifest and records it under
// its names. Recording an image that exists only adds the names.
func (s *Store) CreateImage(ctx context.Context, n NewImage) (Image, error) {
	cfgDigest, err := s.PutBlobBytes(ctx, n.Config)
	if err != nil {
		return Image{}, fmt.Errorf("storing image config: %w", err)
	}
	mDigest, err := s.PutBlobBytes(ctx, n.Manifest)
	if err != nil {
		return Image{}, fmt.Errorf("storing image manifest: %w", err)
	}
	id := cfgDigest.Encoded()
	size, err := s.chainSize(ctx, n.TopLayer)
	if err != nil {
		return Image{}, err
	}
	var replaced digest.Digest
	err = s.db.tx(ctx, func(tx *sql.Tx) error {
		// An image removed at the same time may have taken these blobs
		// away after they were written (removeUnusedBlobs): put them back
		// under the lock that removal takes too.
		if err := s.restoreBlobs(ctx, n.Config, n.Manifest); err != nil {
			return err
		}
		var old digest.Digest
		err := tx.QueryRowContext(ctx, `SELECT manifest_digest FROM images WHERE id=?`, id).Scan(&old)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if old != "" && old != mDigest {
			replaced = old
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO images(id, top_layer, manifest_digest, manifest_type, created, size) VALUES(?,?,?,?,?,?)
			ON CONFLICT(id) DO UPDATE SET manifest_digest=excluded.manifest_digest, manifest_type=excluded.manifest_type`,
			id, n.TopLayer, mDigest, n.MediaType, n.Created.UnixNano(), size)
		if err != nil {
			return err
		}
		if n.Hold {
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO image_holds(image_id, owner) VALUES(?,?)`, id, owner); err != nil {
				return err
			}
		}
		return addNames(ctx, tx, id, n.Names)
	})
	if err != nil {
		return Image{}, fmt.Errorf("recording image %s: %w", id, err)
	}
	if replaced != "" {
		// The image's manifest was rewritten (a new format): the old one
		// is nobody's now.
		s.removeUnusedBlobs(ctx, []digest.Digest{replaced})
	}
	return s.Image(ctx, id)
}

func (s *Store) chainSize(ctx context.Context, top string) (int64, error) {
	chain, err := s.LayerChain(ctx, top)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, l := range chain {
		n += l.Size
	}
	return n, nil
}

func addNames(ctx context.Context, tx *sql.Tx, id string, names []string) error {
	for _, name := range names {
		if _, err := tx.ExecContext(ctx, `INSERT INTO names(name, image_id, added) VALUES(?,?,?)
			ON CONFLICT(name) DO UPDATE SET image_id=excluded.image_id, added=excluded.added`, name, id, time.Now().UnixNano()); err != nil {
			return err
		}
	}
	return nil
}

// AddNames gives the image more names, taking them from other images.
func (s *Store) AddNames(ctx context.Context, id string, names []string) error {
	return s.db.tx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM images WHERE id=?`, id).Scan(&one); err != nil {
			return fmt.Errorf("%w: %s", ErrImageUnknown, id)
		}
		return addNames(ctx, tx, id, names)
	})
}

// RemoveName takes a name off whatever image has it.
func (s *Store) RemoveName(ctx context.Context, name string) error {
	return s.db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM names WHERE name=?`, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: %s", ErrImageUnknown, name)
		}
		return nil
	})
}

const imageCols = `id, top_layer, manifest_digest, manifest_type, created, size`

func scanImage(row interface{ Scan(...any) error }) (Image, error) {
	var i Image
	var created int64
	err := row.Scan(&i.ID, &i.TopLayer, &i.ManifestDigest, &i.ManifestType, &created, &i.Size)
	i.Created = time.Unix(0, created)
	return i, err
}

// Image returns an image by full ID.
func (s *Store) Image(ctx context.Context, id string) (Image, error) {
	img, err := scanImage(s.db.sql.QueryRowContext(ctx, `SELECT `+imageCols+` FROM images WHERE id=?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Image{}, fmt.Errorf("%w: %s", ErrImageUnknown, id)
	}
	if err != nil {
		return Image{}, err
	}
	img.Names, err = s.namesOf(ctx, id)
	return img, err
}

func (s *Store) namesOf(ctx context.Context, id string) ([]string, error) {
	rows, err := s.db.sql.QueryContext(ctx, `SELECT name FROM names WHERE image_id=? ORDER BY added, name`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

// Images lists every image, newest first, with its names; one query each
// for images and names, whatever the number of images.
func (s *Store) Images(ctx context.Context) ([]Image, error) {
	tx, err := s.db.sql.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT `+imageCols+` FROM images ORDER BY created DESC, id`)
	if err != nil {
		return nil, err
	}
	var out []Image
	idx := map[string]int{}
	for rows.Next() {
		img, err := scanImage(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		idx[img.ID] = len(out)
		out = append(out, img)
	}
	rows.Close()
	nrows, err := tx.QueryContext(ctx, `SELECT name, image_id FROM names ORDER BY added, name`)
	if err != nil {
		return nil, err
	}
	defer nrows.Close()
	for nrows.Next() {
		var name, id string
		if err := nrows.Scan(&name, &id); err != nil {
			return nil, err
		}
		if i, ok := idx[id]; ok {
			out[i].Names = append(out[i].Names, name)
		}
	}
	return out, nrows.Err()
}

// LookupImage finds an image by name (short names are tried as local
// names), by full ID, or by a unique ID prefix, with or without "sha256:".
func (s *Store) LookupImage(ctx context.Context, ref string) (Image, error) {
	if cands, err := image.LocalCandidates(ref); err == nil {
		for _, c := range cands {
			var id string
			err := s.db.sql.QueryRowContext(ctx, `SELECT image_id FROM names WHERE name=?`, c).Scan(&id)
			if err == nil {
				return s.Image(ctx, id)
			}
		}
	}
	prefix := strings.TrimPrefix(ref, "sha256:")
	if len(prefix) >= 3 && isHex(prefix) {
		rows, err := s.db.sql.QueryContext(ctx, `SELECT id FROM images WHERE id >= ? AND id < ? LIMIT 2`, prefix, prefix+"g")
		if err != nil {
			return Image{}, err
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return Image{}, err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if len(ids) == 1 {
			return s.Image(ctx, ids[0])
		}
		if len(ids) > 1 {
			return Image{}, fmt.Errorf("%w %q: it matches several images", ErrAmbiguous, ref)
		}
	}
	return Image{}, fmt.Errorf("%w: %s", ErrImageUnknown, ref)
}

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ImageConfig returns the raw config of an image.
func (s *Store) ImageConfig(img Image) ([]byte, error) {
	return s.ReadBlob(img.ConfigDigest(), image.MaxDocumentSize)
}

// ImageManifest returns the raw manifest of an image.
func (s *Store) ImageManifest(img Image) ([]byte, error) {
	return s.ReadBlob(img.ManifestDigest, image.MaxDocumentSize)
}

// ContainersUsing lists the names of containers made from the image.
func (s *Store) ContainersUsing(ctx context.Context, id string) ([]string, error) {
	return s.db.column(ctx, `SELECT name FROM containers WHERE image_id=?`, id)
}

// DeleteImage removes the image with all its names, then every layer and
// blob nothing else uses. It refuses while a container uses the image.
func (s *Store) DeleteImage(ctx context.Context, id string) error {
	blobs, err := s.deleteImage(ctx, id)
	if err != nil {
		return err
	}
	s.removeUnusedBlobs(ctx, blobs)
	return s.GC(ctx)
}

// deleteImage removes the image's rows and returns its config and
// manifest digests; their blobs and its layers are left to the caller
// (removeUnusedBlobs, GC), so that removing many images collects once.
func (s *Store) deleteImage(ctx context.Context, id string) ([]digest.Digest, error) {
	var blobs []digest.Digest
	err := s.db.tx(ctx, func(tx *sql.Tx) error {
		var err error
		blobs, err = s.deleteImageRows(ctx, tx, id)
		return err
	})
	return blobs, err
}

// restoreBlobs writes again any of docs whose blob file is missing.
func (s *Store) restoreBlobs(ctx context.Context, docs ...[]byte) error {
	for _, b := range docs {
		if s.HasBlob(digest.FromBytes(b)) {
			continue
		}
		if _, err := s.PutBlobBytes(ctx, b); err != nil {
			return err
		}
	}
	return nil
}
