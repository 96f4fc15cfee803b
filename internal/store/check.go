package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// ProblemKind is a kind of damage Check finds.
type ProblemKind int

// The kinds of damage, each with what --repair does about it.
const (
	ProblemIncompleteLayer     ProblemKind = iota // left half made or half removed by a dead process: finished or undone
	ProblemIncompleteContainer                    // the same for a container: removed
	ProblemOrphanLayer                            // complete, but nothing uses it: removed
	ProblemOrphanSnapshot                         // on disk with no record: removed
	ProblemMissingSnapshot                        // recorded, gone from disk: remade from its blob, or its images removed
	ProblemBrokenChain                            // its parent is not recorded: its images removed
	ProblemMissingBlob                            // an image's config or manifest is gone: the image removed
	ProblemCorruptBlob                            // does not hash to its name (--digests): removed, with what needs it
	ProblemMissingLayerBlob                       // a layer's compressed form is recorded but gone: the record dropped
	ProblemUnreferencedBlob                       // a blob file nothing names: removed
	ProblemDanglingName                           // a name of no image: removed
	ProblemDamagedImage                           // an image with a missing or broken layer: removed unless a container uses it
	ProblemBrokenContainer                        // a container whose layer or snapshot is gone: reported only
	ProblemLeakedMount                            // a mount in the store nothing counts: unmounted
	ProblemStaleMountCount                        // a container counted as mounted that is not: count reset
	ProblemLostLayer                              // recorded as a blob only, and no blob of it is stored: its images removed
)

var problemNames = [...]string{"incomplete layer", "incomplete container", "orphaned layer", "orphaned snapshot",
	"missing snapshot", "broken layer chain", "missing blob", "corrupted blob", "missing layer blob",
	"unreferenced blob", "name pointing nowhere", "damaged image", "broken container", "leaked mount", "stale mount count",
	"lost layer"}

func (k ProblemKind) String() string {
	if int(k) < len(problemNames) {
		return problemNames[k]
	}
	return fmt.Sprintf("problem %d", int(k))
}

// Problem is one finding of Check.
type Problem struct {
	Kind     ProblemKind
	Object   string // the layer, image, blob, name, container or path
	Detail   string
	Repaired bool
	// RepairErr says why a repair was tried and failed.
	RepairErr error
}

// CheckOptions shape a check.
type CheckOptions struct {
	// Digests re-hashes every blob file.
	Digests bool
	// Repair mends what is safe to mend (see ProblemKind).
	Repair bool
	// BlobGrace: unreferenced blobs younger than this are left alone (a
	// pull in progress); 0 means DefaultBlobGrace, negative none.
	BlobGrace time.Duration
}

// CheckReport lists what Check found.
type CheckReport struct {
	Problems []Problem
	Layers   int
	Images   int
	Blobs    int
}

// Remaining counts the problems not repaired.
func (r CheckReport) Remaining() int {
	n := 0
	for _, p := range r.Problems {
		if !p.Repaired {
			n++
		}
	}
	return n
}

// Check looks the whole store over: records against the disk, blobs
// against their digests (with Digests), and mounts against the mount
// counts; with Repair it mends what is safe and reports the rest. It
// never removes anything a live kiln process is working on.
func (s *Store) Check(ctx context.Context, o CheckOptions) (CheckReport, error) {
	c := &checker{s: s, o: o}
	// Disk first, records after: a snapshot made meanwhile has its
	// record already (rows are written before disk work).
	snaps, err := s.snapshotIDs()
	if err != nil {
		return c.rep, err
	}
	steps := []func(context.Context) error{
		c.incomplete,
		func(ctx context.Context) error { return c.layers(ctx, snaps) },
		c.blobs,
		c.images,
		c.containers,
		c.mounts,
		c.orphanLayers,
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return c.rep, err
		}
	}
	sort.SliceStable(c.rep.Problems, func(i, j int) bool { return c.rep.Problems[i].Kind < c.rep.Problems[j].Kind })
	return c.rep, nil
}

type checker struct {
	s   *Store
	o   CheckOptions
	rep CheckReport
	// damaged are layers whose content cannot be had: missing or broken.
	damaged map[string]bool
}

// add records a problem and, with Repair, runs fix (nil: report only).
func (c *checker) add(p Problem, fix func() error) {
	if c.o.Repair && fix != nil {
		if err := fix(); err != nil {
			p.RepairErr = err
		} else {
			p.Repaired = true
		}
	}
	c.rep.Problems = append(c.rep.Problems, p)
}

// snapshotIDs lists the complete snapshots in the driver's home whose
// names look like kiln's IDs (64 hex digits).
func (s *Store) snapshotIDs() (map[string]bool, error) {
	entries, err := os.ReadDir(s.driver.Home())
	if err != nil {
		return nil, fmt.Errorf("listing snapshots: %w", err)
	}
	out := map[string]bool{}
	for _, e := range entries {
		if len(e.Name()) == 64 && isHex(e.Name()) && s.driver.Exists(e.Name()) {
			out[e.Name()] = true
		}
	}
	return out, nil
}

// incomplete finds rows a dead process left half done; recovery at
// open mends them, so they show up only when one died since.
func (c *checker) incomplete(ctx context.Context) error {
	type row struct{ table, id, state, own, extra string }
	var rows []row
	for _, q := range []struct{ table, sql string }{
		{"layers", `SELECT id, state, owner, promote_from FROM layers WHERE state != 'complete'`},
		{"containers", `SELECT id, state, owner, '' FROM containers WHERE state != 'complete'`},
	} {
		rs, err := c.s.db.sql.QueryContext(ctx, q.sql)
		if err != nil {
			return err
		}
		for rs.Next() {
			r := row{table: q.table}
			if err := rs.Scan(&r.id, &r.state, &r.own, &r.extra); err != nil {
				rs.Close()
				return err
			}
			if !c.s.alive(r.own) {
				rows = append(rows, r)
			}
		}
		rs.Close()
	}
	for _, r := range rows {
		if r.table == "layers" {
			c.add(Problem{Kind: ProblemIncompleteLayer, Object: r.id, Detail: "left " + r.state + " by a process that died"},
				func() error { return c.s.recoverLayer(ctx, r.id, r.state, r.extra) })
			continue
		}
		c.add(Problem{Kind: ProblemIncompleteContainer, Object: r.id, Detail: "left " + r.state + " by a process that died"},
			func() error { return c.s.removeContainerFiles(ctx, r.id) })
	}
	return nil
}

// layers compares layer records with the snapshots on disk.
func (c *checker) layers(ctx context.Context, snaps map[string]bool) error {
	in, err := c.s.readInventory(ctx)
	if err != nil {
		return err
	}
	c.rep.Layers = len(in.layers)
	c.damaged = map[string]bool{}
	known := map[string]bool{}
	rs, err := c.s.db.sql.QueryContext(ctx, `SELECT id FROM layers UNION SELECT id FROM containers`)
	if err != nil {
		return err
	}
	for rs.Next() {
		var id string
		if err := rs.Scan(&id); err != nil {
			rs.Close()
			return err
		}
		known[id] = true
	}
	rs.Close()
	for id := range snaps {
		if !known[id] {
			c.add(Problem{Kind: ProblemOrphanSnapshot, Object: id, Detail: "a snapshot on disk that no layer or container records"},
				func() error { return c.s.driver.Remove(ctx, id) })
		}
	}
	for _, l := range sortLayers(in.layers) {
		switch {
		case l.Parent != "" && (c.damaged[l.Parent] || in.layers[l.Parent].ID == ""):
			c.damaged[l.ID] = true
			if in.layers[l.Parent].ID == "" {
				c.add(Problem{Kind: ProblemBrokenChain, Object: l.ID, Detail: "its parent layer " + l.Parent + " is not recorded"}, nil)
			}
		case l.Files && !c.s.driver.Exists(l.ID):
			c.add(Problem{Kind: ProblemMissingSnapshot, Object: l.ID, Detail: "recorded as complete, gone from disk"},
				func() error { return c.remakeLayer(ctx, l) })
			if !c.s.driver.Exists(l.ID) && !c.s.hasAnyBlob(ctx, l) {
				c.damaged[l.ID] = true
			}
		case !l.Files && !c.s.hasAnyBlob(ctx, l):
			c.add(Problem{Kind: ProblemLostLayer, Object: l.ID, Detail: "recorded as a blob, but no blob of it is stored"}, nil)
			c.damaged[l.ID] = true
		}
	}
	return nil
}

// remakeLayer turns a layer whose snapshot is gone back into a blob
// layer, when one of its blobs is stored: its files are made again when
// something needs them.
func (c *checker) remakeLayer(ctx context.Context, l Layer) error {
	if !c.s.hasAnyBlob(ctx, l) {
		return fmt.Errorf("no blob of layer %s is stored to remake it from: pull its images again", l.DiffID)
	}
	if err := c.s.driver.Remove(ctx, l.ID); err != nil {
		return err
	}
	c.s.removeTarSplit(l.ID)
	return c.s.db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE layers SET files=?, files_owner='' WHERE id=?`, filesNo, l.ID)
		return err
	})
}

// blobs checks blob files: layer blob records without a file, files
// nothing names, and with Digests, content against names.
func (c *checker) blobs(ctx context.Context) error {
	in, err := c.s.readInventory(ctx)
	if err != nil {
		return err
	}
	for id, bs := range in.layerBlobs {
		for _, b := range bs {
			if !c.s.HasBlob(b.Digest) {
				c.add(Problem{Kind: ProblemMissingLayerBlob, Object: string(b.Digest), Detail: "recorded for layer " + id + "; pushing makes it again"},
					func() error { return c.s.dropLayerBlob(ctx, id, b.Digest) })
			}
		}
	}
	files, err := c.s.blobFiles()
	if err != nil {
		return err
	}
	c.rep.Blobs = len(files)
	refs := in.referencedBlobs()
	cutoff := time.Now().Add(-PruneOptions{BlobGrace: c.o.BlobGrace}.grace())
	for _, f := range files {
		if f.Digest == "" {
			continue
		}
		if c.o.Digests {
			if bad, err := c.s.blobCorrupt(ctx, f.Digest); err != nil {
				return err
			} else if bad != "" {
				c.add(Problem{Kind: ProblemCorruptBlob, Object: string(f.Digest), Detail: "its content hashes to " + string(bad)},
					func() error { return c.s.dropCorruptBlob(ctx, f.Digest) })
				continue
			}
		}
		if !refs[f.Digest] && f.ModTime.Before(cutoff) {
			c.add(Problem{Kind: ProblemUnreferencedBlob, Object: string(f.Digest), Detail: HumanBytes(f.Size) + " that no image or layer names"},
				func() error { c.s.removeUnusedBlobs(ctx, []digest.Digest{f.Digest}); return nil })
		}
	}
	return nil
}

// blobCorrupt re-hashes a blob and returns what it hashes to when that
// is not its name ("" when it is sound or gone meanwhile).
func (s *Store) blobCorrupt(ctx context.Context, d digest.Digest) (digest.Digest, error) {
	f, err := os.Open(s.blobPath(d))
	if os.IsNotExist(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx, f}); err != nil {
		return "", fmt.Errorf("hashing blob %s: %w", d, err)
	}
	if got := digest.NewDigest(digest.SHA256, h); got != d {
		return got, nil
	}
	return "", nil
}

func (s *Store) dropLayerBlob(ctx context.Context, layerID string, d digest.Digest) error {
	return s.db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM layer_blobs WHERE layer_id=? AND digest=?`, layerID, d)
		return err
	})
}

// dropCorruptBlob removes a corrupted blob file and the layer records
// that name it; images whose config or manifest it was are damaged and
// handled by the image pass.
func (s *Store) dropCorruptBlob(ctx context.Context, d digest.Digest) error {
	if err := os.Remove(s.blobPath(d)); err != nil && !os.IsNotExist(err) {
		return err
	}
	return s.db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM layer_blobs WHERE digest=?`, d)
		return err
	})
}

// images finds names pointing nowhere and images that cannot be used:
// config or manifest gone, or a layer missing or damaged.
func (c *checker) images(ctx context.Context) error {
	in, err := c.s.readInventory(ctx)
	if err != nil {
		return err
	}
	c.rep.Images = len(in.images)
	ids := map[string]bool{}
	for _, img := range in.images {
		ids[img.ID] = true
	}
	for _, n := range in.names {
		if !ids[n.ImageID] {
			c.add(Problem{Kind: ProblemDanglingName, Object: n.Name, Detail: "names image " + n.ImageID + ", which is not there"},
				func() error { return c.s.dropName(ctx, n.Name, n.ImageID) })
		}
	}
	users := map[string]bool{}
	for _, ct := range in.containers {
		users[ct.ImageID] = true
	}
	for _, img := range in.images {
		p := c.imageDamage(in, img)
		if p == nil {
			continue
		}
		if len(img.Names) > 0 {
			p.Detail += " (names: " + strings.Join(img.Names, ", ") + ")"
		}
		fix := func() error { return c.s.DeleteImage(ctx, img.ID) }
		if users[img.ID] {
			fix = func() error {
				return fmt.Errorf("a working container uses the image: remove the container, then check again")
			}
		}
		c.add(*p, fix)
	}
	return nil
}

// imageDamage says why an image cannot be used, or nil when it can.
func (c *checker) imageDamage(in *inventory, img Image) *Problem {
	switch {
	case !c.s.HasBlob(img.ConfigDigest()):
		return &Problem{Kind: ProblemMissingBlob, Object: string(img.ConfigDigest()), Detail: "the config of image " + img.ID[:12] + " is gone"}
	case !c.s.HasBlob(img.ManifestDigest):
		return &Problem{Kind: ProblemMissingBlob, Object: string(img.ManifestDigest), Detail: "the manifest of image " + img.ID[:12] + " is gone"}
	case img.TopLayer != "" && in.layers[img.TopLayer].ID == "":
		return &Problem{Kind: ProblemDamagedImage, Object: img.ID, Detail: "its top layer " + img.TopLayer + " is not recorded"}
	case c.damaged[img.TopLayer]:
		return &Problem{Kind: ProblemDamagedImage, Object: img.ID, Detail: "a layer of it is missing or broken"}
	}
	return nil
}

func (s *Store) dropName(ctx context.Context, name, imageID string) error {
	return s.db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM names WHERE name=? AND image_id=? AND NOT EXISTS (SELECT 1 FROM images WHERE id=?)`, name, imageID, imageID)
		return err
	})
}

// containers finds working containers whose layer or snapshot is gone.
func (c *checker) containers(ctx context.Context) error {
	in, err := c.s.readInventory(ctx)
	if err != nil {
		return err
	}
	for _, ct := range in.containers {
		switch {
		case ct.Layer != "" && (in.layers[ct.Layer].ID == "" || c.damaged[ct.Layer]):
			c.add(Problem{Kind: ProblemBrokenContainer, Object: ct.Name, Detail: "its layer " + ct.Layer + " is missing or broken"}, nil)
		case !c.s.driver.Exists(ct.ID):
			c.add(Problem{Kind: ProblemBrokenContainer, Object: ct.Name, Detail: "its snapshot is gone from disk; `kiln rm` it"}, nil)
		}
	}
	return nil
}

// orphanLayers finds complete layers nothing uses; GC removes them.
func (c *checker) orphanLayers(ctx context.Context) error {
	ids, err := c.s.db.column(ctx, orphanLayersQuery)
	if err != nil {
		return err
	}
	for _, id := range ids {
		c.add(Problem{Kind: ProblemOrphanLayer, Object: id, Detail: "no image, container or layer uses it"}, func() error { return c.s.GC(ctx) })
	}
	return nil
}
