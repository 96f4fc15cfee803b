package store

import (
	"context"
	"database/sql"
	"strconv"
	"strings"

	digest "github.com/opencontainers/go-digest"
)

// The store remembers which registry repositories hold each of its blobs:
// where a blob was pulled from, and where it was pushed to. A push to a
// repository of the same registry then mounts the blob from there instead
// of uploading it again (Docker and containers/image keep the same
// knowledge).

// maxRepositories bounds the repositories a push tries to mount from.
const maxRepositories = 16

// recordBlobRepository notes that repository holds blobs.
func (s *Store) recordBlobRepository(ctx context.Context, repository string, blobs []digest.Digest) {
	if repository == "" || len(blobs) == 0 {
		return
	}
	_ = s.db.tx(ctx, func(tx *sql.Tx) error {
		for _, d := range blobs {
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO blob_repositories(digest, repository) VALUES(?,?)`, d, repository); err != nil {
				return err
			}
		}
		return nil
	})
}

// blobRepositories lists the repositories known to hold any of blobs,
// the ones holding most of them first.
func (s *Store) blobRepositories(ctx context.Context, blobs []digest.Digest) []string {
	if len(blobs) == 0 {
		return nil
	}
	args := make([]any, len(blobs))
	for i, d := range blobs {
		args[i] = d
	}
	q := `SELECT repository FROM blob_repositories WHERE digest IN (?` + strings.Repeat(",?", len(blobs)-1) + `)
		GROUP BY repository ORDER BY count(*) DESC, repository LIMIT ` + strconv.Itoa(maxRepositories)
	rows, err := s.db.sql.QueryContext(ctx, q, args...)
	if err != nil {
		return nil
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r string
		if rows.Scan(&r) == nil {
			out = append(out, r)
		}
	}
	return out
}

// BlobRepositories lists registry repositories known to hold blobs of the
// image.
func (src *ImageSource) BlobRepositories(ctx context.Context) []string {
	chain, err := src.s.LayerChain(ctx, src.img.TopLayer)
	if err != nil {
		return nil
	}
	blobs := []digest.Digest{src.img.ConfigDigest()}
	for _, l := range chain {
		lbs, err := src.s.LayerBlobs(ctx, l.ID)
		if err != nil {
			return nil
		}
		for _, b := range lbs {
			blobs = append(blobs, b.Digest)
		}
	}
	return src.s.blobRepositories(ctx, blobs)
}

// RecordBlobRepository notes that repository now holds blobs of the image.
func (src *ImageSource) RecordBlobRepository(ctx context.Context, repository string, blobs []digest.Digest) {
	src.s.recordBlobRepository(ctx, repository, blobs)
}

// RecordBlobRepository notes that repository holds the blobs pulled.
func (d *ImageDestination) RecordBlobRepository(ctx context.Context, repository string, blobs []digest.Digest) {
	d.s.recordBlobRepository(ctx, repository, blobs)
}
