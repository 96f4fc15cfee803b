package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// A manifest's signatures and the artifacts that refer to it (OCI
// referrers: provenance, SBOMs) are kept by the manifest's digest, not
// by image: they hold for any image with that manifest, and go when the
// last such image goes.

// Signatures returns the signature blobs of the manifest d, in order
// (none is not an error). Blobs are containers/image's serialization;
// the store does not look inside them.
func (s *Store) Signatures(ctx context.Context, d digest.Digest) ([][]byte, error) {
	rows, err := s.db.sql.QueryContext(ctx, `SELECT content FROM signatures WHERE manifest_digest=? ORDER BY position`, d.String())
	if err != nil {
		return nil, fmt.Errorf("reading signatures of %s: %w", d, err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// SetSignatures replaces the signatures of the manifest d.
func (s *Store) SetSignatures(ctx context.Context, d digest.Digest, sigs [][]byte) error {
	return s.db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM signatures WHERE manifest_digest=?`, d.String()); err != nil {
			return err
		}
		for i, b := range sigs {
			if _, err := tx.ExecContext(ctx, `INSERT INTO signatures(manifest_digest, position, content) VALUES(?, ?, ?)`, d.String(), i, b); err != nil {
				return fmt.Errorf("storing signatures of %s: %w", d, err)
			}
		}
		return nil
	})
}

// Referrer is an artifact manifest whose subject is a stored manifest,
// with the blobs it names (config and layers), all small.
type Referrer struct {
	Digest       digest.Digest
	MediaType    string
	ArtifactType string
	Manifest     []byte
	Created      time.Time
	// Blobs holds the content of every blob the manifest names.
	Blobs map[digest.Digest][]byte
}

// AddReferrer stores r as referring to the manifest subject; storing it
// again changes nothing. Its manifest and blobs are verified against
// their digests.
func (s *Store) AddReferrer(ctx context.Context, subject digest.Digest, r Referrer) error {
	if digest.FromBytes(r.Manifest) != r.Digest {
		return fmt.Errorf("referrer %s: %w", r.Digest, ErrDigestMismatch)
	}
	for d, b := range r.Blobs {
		if d.Algorithm().FromBytes(b) != d {
			return fmt.Errorf("referrer %s blob %s: %w", r.Digest, d, ErrDigestMismatch)
		}
	}
	return s.db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO referrers(subject, digest, media_type, artifact_type, manifest, created) VALUES(?, ?, ?, ?, ?, ?)`,
			subject.String(), r.Digest.String(), r.MediaType, r.ArtifactType, r.Manifest, r.Created.UnixNano()); err != nil {
			return err
		}
		for d, b := range r.Blobs {
			if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO referrer_blobs(referrer, digest, content) VALUES(?, ?, ?)`, r.Digest.String(), d.String(), b); err != nil {
				return err
			}
		}
		return nil
	})
}

// Referrers returns the artifacts that refer to the manifest subject,
// oldest first.
func (s *Store) Referrers(ctx context.Context, subject digest.Digest) ([]Referrer, error) {
	tx, err := s.db.sql.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT digest, media_type, artifact_type, manifest, created FROM referrers WHERE subject=? ORDER BY created, digest`, subject.String())
	if err != nil {
		return nil, fmt.Errorf("reading referrers of %s: %w", subject, err)
	}
	var out []Referrer
	for rows.Next() {
		var r Referrer
		var created int64
		if err := rows.Scan(&r.Digest, &r.MediaType, &r.ArtifactType, &r.Manifest, &created); err != nil {
			rows.Close()
			return nil, err
		}
		r.Created = time.Unix(0, created)
		out = append(out, r)
	}
	rows.Close()
	for i := range out {
		out[i].Blobs = map[digest.Digest][]byte{}
		brows, err := tx.QueryContext(ctx, `SELECT digest, content FROM referrer_blobs WHERE referrer=?`, out[i].Digest.String())
		if err != nil {
			return nil, err
		}
		for brows.Next() {
			var d digest.Digest
			var b []byte
			if err := brows.Scan(&d, &b); err != nil {
				brows.Close()
				return nil, err
			}
			out[i].Blobs[d] = b
		}
		brows.Close()
	}
	return out, nil
}

// deleteManifestExtras removes the signatures and referrers of the
// manifest d once no image has it, inside tx.
func deleteManifestExtras(ctx context.Context, tx *sql.Tx, d digest.Digest) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM images WHERE manifest_digest=?`, d.String()).Scan(&n); err != nil || n > 0 {
		return err
	}
	for _, q := range []string{
		`DELETE FROM signatures WHERE manifest_digest=?`,
		`DELETE FROM referrer_blobs WHERE referrer IN (SELECT digest FROM referrers WHERE subject=?)`,
		`DELETE FROM referrers WHERE subject=?`,
	} {
		if _, err := tx.ExecContext(ctx, q, d.String()); err != nil {
			return err
		}
	}
	return nil
}

// Signatures implements transport's SignatureSource: the signatures of
// the image's manifest, when the manifest served is the stored one.
func (src *ImageSource) Signatures(ctx context.Context, d digest.Digest) ([][]byte, error) {
	return src.s.Signatures(ctx, d)
}

// PutSignatures implements transport's SignatureDestination: the
// signatures of the manifest the image is committed with are stored by
// Commit, with the image.
func (d *ImageDestination) PutSignatures(_ context.Context, md digest.Digest, sigs [][]byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.signatures == nil {
		d.signatures = map[digest.Digest][][]byte{}
	}
	d.signatures[md] = sigs
	return nil
}
