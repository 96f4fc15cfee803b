package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// inventory is every complete record of the store, read in one read
// transaction so that it is consistent with itself.
type inventory struct {
	layers     map[string]Layer
	layerBlobs map[string][]LayerBlob // every recorded blob, present or not
	images     []Image
	names      []nameRow
	containers []Container
	mounts     map[string]int // container id -> mount count
	cache      []cacheRow     // nil when there is no build cache table
}

type nameRow struct {
	Name    string `json:"name"`
	ImageID string `json:"imageID"`
	Added   int64  `json:"added"`
}

type cacheRow struct {
	Key      string
	ImageID  string
	LastUsed int64
}

func (s *Store) readInventory(ctx context.Context) (*inventory, error) {
	tx, err := s.db.sql.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	in := &inventory{layers: map[string]Layer{}, layerBlobs: map[string][]LayerBlob{}, mounts: map[string]int{}}
	steps := []func(context.Context, *sql.Tx) error{in.readLayers, in.readImages, in.readContainers, in.readCache}
	for _, step := range steps {
		if err := step(ctx, tx); err != nil {
			return nil, fmt.Errorf("reading store inventory: %w", err)
		}
	}
	return in, nil
}

func (in *inventory) readLayers(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT `+layerCols+` FROM layers WHERE state='complete'`)
	if err != nil {
		return err
	}
	for rows.Next() {
		l, err := scanLayer(rows)
		if err != nil {
			rows.Close()
			return err
		}
		in.layers[l.ID] = l
	}
	rows.Close()
	brows, err := tx.QueryContext(ctx, `SELECT layer_id, digest, media_type, size FROM layer_blobs ORDER BY layer_id, digest`)
	if err != nil {
		return err
	}
	defer brows.Close()
	for brows.Next() {
		var id string
		var b LayerBlob
		if err := brows.Scan(&id, &b.Digest, &b.MediaType, &b.Size); err != nil {
			return err
		}
		in.layerBlobs[id] = append(in.layerBlobs[id], b)
	}
	return brows.Err()
}

func (in *inventory) readImages(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT `+imageCols+` FROM images ORDER BY created, id`)
	if err != nil {
		return err
	}
	idx := map[string]int{}
	for rows.Next() {
		img, err := scanImage(rows)
		if err != nil {
			rows.Close()
			return err
		}
		idx[img.ID] = len(in.images)
		in.images = append(in.images, img)
	}
	rows.Close()
	nrows, err := tx.QueryContext(ctx, `SELECT name, image_id, added FROM names ORDER BY added, name`)
	if err != nil {
		return err
	}
	defer nrows.Close()
	for nrows.Next() {
		var n nameRow
		if err := nrows.Scan(&n.Name, &n.ImageID, &n.Added); err != nil {
			return err
		}
		in.names = append(in.names, n)
		if i, ok := idx[n.ImageID]; ok {
			in.images[i].Names = append(in.images[i].Names, n.Name)
		}
	}
	return nrows.Err()
}

func (in *inventory) readContainers(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT `+ctrCols+` FROM containers WHERE state='complete' ORDER BY created, id`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		c, err := scanContainer(rows)
		if err != nil {
			return err
		}
		in.containers = append(in.containers, c)
		in.mounts[c.ID] = c.MountCount
	}
	return rows.Err()
}

func (in *inventory) readCache(ctx context.Context, tx *sql.Tx) error {
	if ok, err := hasTable(ctx, tx, "build_cache"); err != nil || !ok {
		return err
	}
	rows, err := tx.QueryContext(ctx, `SELECT key, image_id, last_used FROM build_cache ORDER BY last_used DESC, key`)
	if err != nil {
		return err
	}
	defer rows.Close()
	in.cache = []cacheRow{}
	for rows.Next() {
		var c cacheRow
		if err := rows.Scan(&c.Key, &c.ImageID, &c.LastUsed); err != nil {
			return err
		}
		in.cache = append(in.cache, c)
	}
	return rows.Err()
}

type querier interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func hasTable(ctx context.Context, q querier, name string) (bool, error) {
	var one int
	err := q.QueryRowContext(ctx, `SELECT 1 FROM sqlite_master WHERE type='table' AND name=?`, name).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// reachable returns the layers in the chains of tops.
func (in *inventory) reachable(tops []string) map[string]bool {
	seen := map[string]bool{}
	for _, top := range tops {
		for cur := top; cur != "" && !seen[cur]; {
			seen[cur] = true
			l, ok := in.layers[cur]
			if !ok {
				break
			}
			cur = l.Parent
		}
	}
	return seen
}

// referencedBlobs is every blob digest a record names.
func (in *inventory) referencedBlobs() map[digest.Digest]bool {
	refs := map[digest.Digest]bool{}
	for _, img := range in.images {
		refs[img.ConfigDigest()] = true
		refs[img.ManifestDigest] = true
	}
	for _, bs := range in.layerBlobs {
		for _, b := range bs {
			refs[b.Digest] = true
		}
	}
	return refs
}

// blobFile is one file of the blob directory.
type blobFile struct {
	Digest  digest.Digest
	Size    int64
	ModTime time.Time
}

// blobFiles lists the blob directory; names that are not digests are
// returned with an empty Digest so that check can report them.
func (s *Store) blobFiles() ([]blobFile, error) {
	dir := filepath.Join(s.root, "blobs", "sha256")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing blobs: %w", err)
	}
	out := make([]blobFile, 0, len(entries))
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if d.Validate() != nil || !fi.Mode().IsRegular() {
			d = ""
		}
		out = append(out, blobFile{Digest: d, Size: fi.Size(), ModTime: fi.ModTime()})
	}
	return out, nil
}
