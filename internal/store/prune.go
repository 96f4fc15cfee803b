package store

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// DefaultBlobGrace is how old an unreferenced blob file must be before
// prune or check removes it: a pull stores its blobs before it records
// the image that names them.
const DefaultBlobGrace = time.Hour

// PruneOptions say what Prune removes. Images a working container uses
// are never removed.
type PruneOptions struct {
	// All removes every image no container uses, not only unnamed ones.
	All bool
	// Images, when set, says which candidate images may go (filters such
	// as until= and label=); nil lets every candidate go.
	Images func(Image) bool
	// BuildCache prunes the build cache down to KeepStorage bytes (least
	// recently used first) and the images only it kept.
	BuildCache  bool
	KeepStorage int64
	// BlobGrace overrides DefaultBlobGrace when positive; negative means no
	// grace at all (tests).
	BlobGrace time.Duration
}

// PruneReport is what Prune removed.
type PruneReport struct {
	Images       []Image
	CacheEntries int
	Layers       int
	Blobs        int
	Reclaimed    int64 // bytes of layers and blob files that are gone
}

// Prune removes unused images and build cache entries, then every layer
// and blob nothing references any more. Safe while other kiln processes
// work: each image goes in its own transaction, and blob files younger
// than the grace period stay.
func (s *Store) Prune(ctx context.Context, o PruneOptions) (PruneReport, error) {
	var rep PruneReport
	before, err := s.usage(ctx)
	if err != nil {
		return rep, err
	}
	in, err := s.readInventory(ctx)
	if err != nil {
		return rep, err
	}
	if o.BuildCache && in.cache != nil {
		if rep.CacheEntries, err = s.pruneCache(ctx, in, o.KeepStorage); err != nil {
			return rep, err
		}
	}
	if rep.Images, err = s.pruneImages(ctx, o); err != nil {
		return rep, err
	}
	if err := s.GC(ctx); err != nil {
		return rep, err
	}
	if rep.Blobs, err = s.removeUnreferencedBlobs(ctx, o.grace()); err != nil {
		return rep, err
	}
	after, err := s.usage(ctx)
	if err != nil {
		return rep, err
	}
	rep.Layers = before.layers - after.layers
	rep.Reclaimed = max(0, before.bytes-after.bytes)
	return rep, nil
}

func (o PruneOptions) grace() time.Duration {
	switch {
	case o.BlobGrace < 0:
		return 0
	case o.BlobGrace == 0:
		return DefaultBlobGrace
	}
	return o.BlobGrace
}

// pruneImages removes the candidate images: unused by containers and by
// the build cache, unnamed unless All, and accepted by o.Images.
func (s *Store) pruneImages(ctx context.Context, o PruneOptions) ([]Image, error) {
	in, err := s.readInventory(ctx)
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	for _, c := range in.containers {
		used[c.ImageID] = true
	}
	for _, c := range in.cache {
		used[c.ImageID] = true
	}
	// A stored manifest list uses the local images it lists (a
	// multi-platform build's are unnamed): pruning them would leave a
	// list that cannot be pushed (as Podman's did, containers/podman#25525).
	if err := s.addListedImages(ctx, used); err != nil {
		return nil, err
	}
	// A build's step images, until it has cached or named them.
	if err := s.heldImages(ctx, used); err != nil {
		return nil, err
	}
	var removed []Image
	var blobs []digest.Digest
	defer func() { s.removeUnusedBlobs(ctx, blobs) }() // layers: the caller's GC
	for _, img := range in.images {
		if !o.prunable(img, used) {
			continue
		}
		b, err := s.deleteImage(ctx, img.ID)
		if errors.Is(err, ErrImageUnknown) || errors.Is(err, ErrImageInUse) {
			continue // another process removed or used it meanwhile
		}
		if err != nil {
			return removed, err
		}
		blobs = append(blobs, b...)
		removed = append(removed, img)
	}
	return removed, nil
}

// addListedImages marks the local images stored manifest lists list.
func (s *Store) addListedImages(ctx context.Context, used map[string]bool) error {
	names, err := s.ManifestListNames(ctx)
	if err != nil {
		return err
	}
	for _, n := range names {
		ml, err := s.ManifestList(ctx, n)
		if errors.Is(err, ErrManifestListUnknown) {
			continue // removed meanwhile
		}
		if err != nil {
			return err
		}
		for _, where := range ml.Instances {
			used[where] = true // an image ID, or a reference no image has
		}
	}
	return nil
}

func (o PruneOptions) prunable(img Image, used map[string]bool) bool {
	if used[img.ID] || len(img.Names) > 0 && !o.All {
		return false
	}
	return o.Images == nil || o.Images(img)
}

// pruneCache keeps the most recently used build cache entries whose
// images' own layers fit in keep bytes, deletes the rest, and returns
// how many went; pruneImages then removes the unnamed images they kept.
func (s *Store) pruneCache(ctx context.Context, in *inventory, keep int64) (int, error) {
	var doomed []string
	var total int64
	counted := map[string]bool{}
	for _, c := range in.cache { // most recently used first
		if !counted[c.ImageID] {
			counted[c.ImageID] = true
			total += in.ownSize(c.ImageID)
		}
		if total > keep {
			doomed = append(doomed, c.Key)
		}
	}
	if len(doomed) == 0 {
		return 0, nil
	}
	err := s.db.tx(ctx, func(tx *sql.Tx) error {
		for _, k := range doomed {
			if _, err := tx.ExecContext(ctx, `DELETE FROM build_cache WHERE key=?`, k); err != nil {
				return err
			}
		}
		return nil
	})
	return len(doomed), err
}

// ownSize is the size of the image's top layer: what the build step that
// made it added.
func (in *inventory) ownSize(imageID string) int64 {
	for _, img := range in.images {
		if img.ID == imageID {
			return in.layers[img.TopLayer].Size
		}
	}
	return 0
}

// removeUnreferencedBlobs deletes blob files no record names that are
// older than grace, and returns how many went.
func (s *Store) removeUnreferencedBlobs(ctx context.Context, grace time.Duration) (int, error) {
	in, err := s.readInventory(ctx)
	if err != nil {
		return 0, err
	}
	refs := in.referencedBlobs()
	files, err := s.blobFiles()
	if err != nil {
		return 0, err
	}
	n := 0
	cutoff := time.Now().Add(-grace)
	for _, f := range files {
		if f.Digest == "" || refs[f.Digest] || f.ModTime.After(cutoff) {
			continue
		}
		// Look again: a writer may have recorded it since the inventory.
		s.removeUnusedBlobs(ctx, []digest.Digest{f.Digest})
		if !s.HasBlob(f.Digest) {
			n++
		}
	}
	return n, nil
}

// Reclaim is what `kiln prune` would give back, in bytes.
type Reclaim struct {
	Images     int64 // layers only unnamed or cache images use, with their blobs
	BuildCache int64 // layers only the build cache keeps
	Blobs      int64 // blob files nothing references
}

// Total is the sum of the parts.
func (r Reclaim) Total() int64 { return r.Images + r.BuildCache + r.Blobs }

// Reclaimable estimates what `kiln prune` (unnamed images, the whole
// build cache, unreferenced blobs) would give back. It only reads.
func (s *Store) Reclaimable(ctx context.Context) (Reclaim, error) {
	var r Reclaim
	in, err := s.readInventory(ctx)
	if err != nil {
		return r, err
	}
	var kept, withCache []string
	for _, c := range in.containers {
		kept = append(kept, c.Layer)
	}
	for _, img := range in.images {
		if len(img.Names) > 0 {
			kept = append(kept, img.TopLayer)
		}
	}
	withCache = append(withCache, kept...)
	for _, c := range in.cache {
		withCache = append(withCache, in.topLayerOf(c.ImageID))
	}
	keep, keepCache := in.reachable(kept), in.reachable(withCache)
	for id, l := range in.layers {
		size := l.Size
		for _, b := range in.layerBlobs[id] {
			size += b.Size
		}
		switch {
		case keep[id]:
		case keepCache[id]:
			r.BuildCache += size
		default:
			r.Images += size
		}
	}
	refs := in.referencedBlobs()
	files, err := s.blobFiles()
	if err != nil {
		return r, err
	}
	for _, f := range files {
		if f.Digest != "" && !refs[f.Digest] {
			r.Blobs += f.Size
		}
	}
	return r, nil
}

func (in *inventory) topLayerOf(imageID string) string {
	for _, img := range in.images {
		if img.ID == imageID {
			return img.TopLayer
		}
	}
	return ""
}

type storeUsage struct {
	layers int
	bytes  int64
}

// usage counts complete layers and adds up layer and blob-file bytes.
func (s *Store) usage(ctx context.Context) (storeUsage, error) {
	var u storeUsage
	err := s.db.sql.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(size), 0) FROM layers WHERE state='complete'`).Scan(&u.layers, &u.bytes)
	if err != nil {
		return u, err
	}
	files, err := s.blobFiles()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return u, err
	}
	for _, f := range files {
		u.bytes += f.Size
	}
	return u, nil
}
