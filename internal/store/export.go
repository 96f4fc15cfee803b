package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/store/driver"
)

// The export directory format (docs/storage.md describes it):
//
//	DIR/index.json              ExportIndex, written last
//	DIR/blobs/sha256/HEX        manifests, configs, layer blobs, layer tars
//	DIR/containers/ID.tar       each working container's writes
//
// A directory without index.json is not an export (yet): every file is
// written to a temp name, fsynced and renamed, and the index is renamed
// into place only after all of them.
const (
	ExportFormat    = "kiln-storage-export"
	ExportVersion   = 1
	exportIndexName = "index.json"
)

// ExportIndex describes an export: everything a store held.
type ExportIndex struct {
	Format     string            `json:"format"`
	Version    int               `json:"version"`
	Created    time.Time         `json:"created"`
	Driver     string            `json:"driver"` // the driver of the store exported
	Root       string            `json:"root"`
	Layers     []ExportLayer     `json:"layers"` // parents before children
	Images     []ExportImage     `json:"images"`
	Containers []ExportContainer `json:"containers"`
	Tables     []ExportTable     `json:"tables,omitempty"`
}

// exportTables are the tables other files of the package own that an
// export carries row by row, when the store has them.
var exportTables = []string{"build_cache", "manifest_lists", "manifest_list_instances"}

// ExportBlob is one blob file of an export.
type ExportBlob struct {
	Digest    digest.Digest `json:"digest"`
	MediaType string        `json:"mediaType,omitempty"`
	Size      int64         `json:"size"`
}

// ExportLayer is a layer; it is applied from its first blob, or from Tar
// (its uncompressed tar, made from the snapshot) when it had no blob.
type ExportLayer struct {
	ID         string        `json:"id"`
	Parent     string        `json:"parent,omitempty"`
	DiffID     digest.Digest `json:"diffID"`
	Size       int64         `json:"size"`
	Created    time.Time     `json:"created"`
	MTimeBound *time.Time    `json:"mtimeBound,omitempty"`
	Blobs      []ExportBlob  `json:"blobs,omitempty"`
	Tar        *ExportBlob   `json:"tar,omitempty"`
}

// ExportImage is an image: its config and manifest are blobs of the export.
type ExportImage struct {
	ID             string        `json:"id"`
	TopLayer       string        `json:"topLayer,omitempty"`
	ManifestDigest digest.Digest `json:"manifestDigest"`
	ManifestType   string        `json:"manifestType"`
	Created        time.Time     `json:"created"`
	Size           int64         `json:"size"`
	Names          []ExportName  `json:"names,omitempty"`
	Config         ExportBlob    `json:"config"`
	Manifest       ExportBlob    `json:"manifest"`
}

// ExportName is one name of an image, with when it was given.
type ExportName struct {
	Name  string    `json:"name"`
	Added time.Time `json:"added"`
}

// ExportContainer is a working container; Diff is the tar of its writes
// (ownership, modes, xattrs, whiteouts) against its layer.
type ExportContainer struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	ImageID    string     `json:"imageID,omitempty"`
	Layer      string     `json:"layer,omitempty"`
	Created    time.Time  `json:"created"`
	MountCount int        `json:"mountCount"`
	Data       []byte     `json:"data"` // the container's state, byte for byte
	Diff       ExportBlob `json:"diff"`
}

// ExportTable is a table exported row by row (the build cache, manifest
// lists). Byte-string values are written as {"base64": "..."}.
type ExportTable struct {
	Table   string   `json:"table"`
	Columns []string `json:"columns"`
	Rows    [][]any  `json:"rows"`
}

// bytesValue is how a byte-string column value appears in an ExportTable.
type bytesValue struct {
	Base64 []byte `json:"base64"`
}

// ProgressEvent reports the work on one item (a layer, a container, a
// blob): Done of Total bytes, and Finished once when it is over.
type ProgressEvent struct {
	Item     string
	Done     int64
	Total    int64
	Finished bool
}

// Progress receives progress events; nil means nobody listens.
type Progress func(ProgressEvent)

// ExportOptions shape an export.
type ExportOptions struct {
	Progress Progress
}

// Export writes everything the store holds into dir (see ExportIndex):
// images with all their names and original blobs, layers, working
// containers with their writes, and the build cache. Running it again on
// the same dir reuses the blobs already there, so an interrupted export
// resumes. Other processes may keep reading; to keep writers out use
// Freeze.
func (s *Store) Export(ctx context.Context, dir string, o ExportOptions) (*ExportIndex, error) {
	for _, sub := range []string{"blobs/sha256", "containers"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("creating export directory: %w", err)
		}
	}
	// The old index, if any, stops describing the directory now.
	if err := os.Remove(filepath.Join(dir, exportIndexName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	in, err := s.readInventory(ctx)
	if err != nil {
		return nil, err
	}
	idx, err := s.indexOf(in)
	if err != nil {
		return nil, err
	}
	if err := ensureDirSpace(dir, s.exportEstimate(idx)); err != nil {
		return nil, err
	}
	ex := exporter{s: s, dir: dir, progress: o.Progress}
	if err := ex.writeAll(ctx, idx); err != nil {
		return nil, err
	}
	for _, name := range exportTables {
		t, err := s.dumpTable(ctx, name)
		if err != nil {
			return nil, err
		}
		if t != nil {
			idx.Tables = append(idx.Tables, *t)
		}
	}
	if err := writeJSONAtomic(filepath.Join(dir, exportIndexName), idx); err != nil {
		return nil, fmt.Errorf("writing export index: %w", err)
	}
	ex.removeStale(idx)
	return idx, nil
}

// indexOf describes the inventory as an export index, without files.
func (s *Store) indexOf(in *inventory) (*ExportIndex, error) {
	idx := &ExportIndex{Format: ExportFormat, Version: ExportVersion, Created: time.Now().UTC(), Driver: s.driver.Name(), Root: s.root}
	var tops []string
	for _, img := range in.images {
		tops = append(tops, img.TopLayer)
	}
	for _, c := range in.containers {
		tops = append(tops, c.Layer)
	}
	used := in.reachable(tops)
	for _, l := range sortLayers(in.layers) {
		if !used[l.ID] {
			continue // nothing uses it: GC takes it
		}
		el := ExportLayer{ID: l.ID, Parent: l.Parent, DiffID: l.DiffID, Size: l.Size, Created: l.Created.UTC(), MTimeBound: l.MTimeBound}
		for _, b := range in.layerBlobs[l.ID] {
			if s.HasBlob(b.Digest) {
				el.Blobs = append(el.Blobs, ExportBlob{Digest: b.Digest, MediaType: b.MediaType, Size: b.Size})
			}
		}
		if len(el.Blobs) == 0 {
			el.Tar = &ExportBlob{Digest: l.DiffID, MediaType: "application/vnd.oci.image.layer.v1.tar", Size: l.Size}
		}
		idx.Layers = append(idx.Layers, el)
	}
	added := map[string]time.Time{}
	for _, n := range in.names {
		added[n.Name] = time.Unix(0, n.Added).UTC()
	}
	for _, img := range in.images {
		ei := ExportImage{ID: img.ID, TopLayer: img.TopLayer, ManifestDigest: img.ManifestDigest, ManifestType: img.ManifestType,
			Created: img.Created.UTC(), Size: img.Size, Config: s.blobEntry(img.ConfigDigest()), Manifest: s.blobEntry(img.ManifestDigest)}
		for _, n := range img.Names {
			ei.Names = append(ei.Names, ExportName{Name: n, Added: added[n]})
		}
		idx.Images = append(idx.Images, ei)
	}
	for _, c := range in.containers {
		idx.Containers = append(idx.Containers, ExportContainer{ID: c.ID, Name: c.Name, ImageID: c.ImageID, Layer: c.Layer,
			Created: c.Created.UTC(), MountCount: s.liveMountCount(c), Data: c.Data})
	}
	return idx, nil
}

func (s *Store) blobEntry(d digest.Digest) ExportBlob {
	e := ExportBlob{Digest: d}
	if fi, err := os.Stat(s.blobPath(d)); err == nil {
		e.Size = fi.Size()
	}
	return e
}

// liveMountCount is the container's mount count, or 0 when its mount is gone.
func (s *Store) liveMountCount(c Container) int {
	if c.MountCount == 0 {
		return 0
	}
	if m, _ := s.driver.Mounted(c.ID); !m {
		return 0
	}
	return c.MountCount
}

// sortLayers orders layers parents first, then by ID.
func sortLayers(layers map[string]Layer) []Layer {
	depth := map[string]int{}
	var depthOf func(id string, n int) int
	depthOf = func(id string, n int) int {
		if d, ok := depth[id]; ok {
			return d
		}
		l, ok := layers[id]
		if !ok || l.Parent == "" || n > 1000 {
			depth[id] = 0
			return 0
		}
		depth[id] = depthOf(l.Parent, n+1) + 1
		return depth[id]
	}
	out := make([]Layer, 0, len(layers))
	for id, l := range layers {
		depthOf(id, 0)
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool {
		if depth[out[i].ID] != depth[out[j].ID] {
			return depth[out[i].ID] < depth[out[j].ID]
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// exportEstimate is about how many bytes the export writes.
func (s *Store) exportEstimate(idx *ExportIndex) int64 {
	var n int64
	for _, l := range idx.Layers {
		for _, b := range l.Blobs {
			n += b.Size
		}
		if l.Tar != nil {
			n += l.Tar.Size
		}
	}
	for _, img := range idx.Images {
		n += img.Config.Size + img.Manifest.Size
	}
	return n
}

// ensureDirSpace refuses to start writing need bytes into dir when its
// filesystem does not have them.
func ensureDirSpace(dir string, need int64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("measuring free space of %s: %w", dir, err)
	}
	if free := int64(st.Bavail) * st.Bsize; free < need {
		return fmt.Errorf("%s has %s free and the export needs about %s: %w", dir, HumanBytes(free), HumanBytes(need), ErrNoSpace)
	}
	return nil
}

// exporter writes the files of one export.
type exporter struct {
	s        *Store
	dir      string
	progress Progress
}

func (ex *exporter) writeAll(ctx context.Context, idx *ExportIndex) error {
	for _, img := range idx.Images {
		for _, b := range []ExportBlob{img.Config, img.Manifest} {
			if err := ex.copyBlob(ctx, b, ""); err != nil {
				return fmt.Errorf("exporting image %s: %w", img.ID, err)
			}
		}
	}
	for i, l := range idx.Layers {
		item := fmt.Sprintf("layer %d/%d %s", i+1, len(idx.Layers), shortDigest(l.DiffID))
		if err := ex.writeLayer(ctx, l, item); err != nil {
			return fmt.Errorf("exporting layer %s: %w", l.ID, err)
		}
	}
	for i := range idx.Containers {
		if err := ex.writeContainer(ctx, &idx.Containers[i]); err != nil {
			return fmt.Errorf("exporting container %s: %w", idx.Containers[i].Name, err)
		}
	}
	return nil
}

func shortDigest(d digest.Digest) string {
	if e := d.Encoded(); len(e) >= 12 {
		return e[:12]
	}
	return string(d)
}

func (ex *exporter) blobPath(d digest.Digest) string {
	return filepath.Join(ex.dir, "blobs", d.Algorithm().String(), d.Encoded())
}

func (ex *exporter) writeLayer(ctx context.Context, l ExportLayer, item string) error {
	for _, b := range l.Blobs {
		if err := ex.copyBlob(ctx, b, item); err != nil {
			return err
		}
	}
	if l.Tar == nil {
		return nil
	}
	if ex.present(*l.Tar) {
		ex.report(ProgressEvent{Item: item, Done: l.Size, Total: l.Size, Finished: true})
		return nil
	}
	layer, err := ex.s.Layer(ctx, l.ID)
	if err != nil {
		return err
	}
	_, err = ex.writeFile(ex.blobPath(l.DiffID), item, l.Size, func(w io.Writer) error { return ex.s.LayerTar(ctx, layer, w) })
	return err
}

// present reports whether an earlier, interrupted run already wrote b.
func (ex *exporter) present(b ExportBlob) bool {
	fi, err := os.Stat(ex.blobPath(b.Digest))
	return err == nil && fi.Size() == b.Size
}

// copyBlob copies a store blob into the export, checking its digest on
// the way: a corrupt blob stops the export instead of spreading.
func (ex *exporter) copyBlob(ctx context.Context, b ExportBlob, item string) error {
	if item == "" {
		item = "blob " + shortDigest(b.Digest)
	}
	if ex.present(b) {
		ex.report(ProgressEvent{Item: item, Done: b.Size, Total: b.Size, Finished: true})
		return nil
	}
	f, err := ex.s.OpenBlob(b.Digest)
	if err != nil {
		return err
	}
	defer f.Close()
	got, err := ex.writeFile(ex.blobPath(b.Digest), item, b.Size, func(w io.Writer) error {
		_, err := io.Copy(w, ctxReader{ctx, f})
		return err
	})
	if err == nil && got.digest != b.Digest {
		_ = os.Remove(ex.blobPath(b.Digest))
		err = fmt.Errorf("blob %s in the store: %w (it hashes to %s): run `kiln storage check --digests --repair`", b.Digest, ErrDigestMismatch, got.digest)
	}
	return err
}

func (ex *exporter) writeContainer(ctx context.Context, c *ExportContainer) error {
	rel := filepath.Join("containers", c.ID+".tar")
	// Where the container's tree is at hand, its files' xattrs go in
	// whole: not every driver's diff keeps them.
	root := ""
	if m, _ := ex.s.driver.Mounted(c.ID); m {
		root, _ = ex.s.driver.Mount(ctx, c.ID, false)
	}
	got, err := ex.writeFile(filepath.Join(ex.dir, rel), "container "+c.Name, 0, func(w io.Writer) error {
		if root == "" {
			return ex.s.ContainerDiff(ctx, c.ID, w)
		}
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(ex.s.ContainerDiff(ctx, c.ID, pw)) }()
		err := withXattrs(ctx, w, pr, root)
		pr.CloseWithError(err)
		return err
	})
	if err != nil {
		return err
	}
	c.Diff = ExportBlob{Digest: got.digest, Size: got.size, MediaType: "application/vnd.oci.image.layer.v1.tar"}
	return nil
}

type written struct {
	digest digest.Digest
	size   int64
}

// writeFile writes path atomically from fill, hashing and reporting
// progress as it goes.
func (ex *exporter) writeFile(path, item string, total int64, fill func(io.Writer) error) (written, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
	if err != nil {
		return written{}, err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	pw := &progressWriter{item: item, total: total, report: ex.report}
	if err := fill(io.MultiWriter(tmp, h, pw)); err != nil {
		tmp.Close()
		return written{}, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return written{}, err
	}
	if err := tmp.Close(); err != nil {
		return written{}, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return written{}, err
	}
	pw.finish()
	return written{digest: digest.NewDigest(digest.SHA256, h), size: pw.done}, nil
}

func (ex *exporter) report(e ProgressEvent) {
	if ex.progress != nil {
		ex.progress(e)
	}
}

// removeStale deletes files of earlier exports the index does not name.
func (ex *exporter) removeStale(idx *ExportIndex) {
	keep := map[string]bool{}
	for _, l := range idx.Layers {
		for _, b := range l.Blobs {
			keep[ex.blobPath(b.Digest)] = true
		}
		if l.Tar != nil {
			keep[ex.blobPath(l.Tar.Digest)] = true
		}
	}
	for _, img := range idx.Images {
		keep[ex.blobPath(img.Config.Digest)], keep[ex.blobPath(img.Manifest.Digest)] = true, true
	}
	for _, c := range idx.Containers {
		keep[filepath.Join(ex.dir, "containers", c.ID+".tar")] = true
	}
	for _, sub := range []string{"blobs/sha256", "containers"} {
		entries, _ := os.ReadDir(filepath.Join(ex.dir, sub))
		for _, e := range entries {
			if p := filepath.Join(ex.dir, sub, e.Name()); !keep[p] {
				_ = os.RemoveAll(p)
			}
		}
	}
}

// progressWriter counts bytes and reports them.
type progressWriter struct {
	item        string
	done, total int64
	report      func(ProgressEvent)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.done += int64(len(b))
	p.report(ProgressEvent{Item: p.item, Done: p.done, Total: max(p.total, p.done)})
	return len(b), nil
}

func (p *progressWriter) finish() {
	p.report(ProgressEvent{Item: p.item, Done: p.done, Total: max(p.total, p.done), Finished: true})
}

// dumpTable exports every row of a table, or nil when it does not exist.
func (s *Store) dumpTable(ctx context.Context, table string) (*ExportTable, error) {
	if ok, err := hasTable(ctx, s.db.sql, table); err != nil || !ok {
		return nil, err
	}
	rows, err := s.db.sql.QueryContext(ctx, `SELECT * FROM `+table)
	if err != nil {
		return nil, fmt.Errorf("exporting table %s: %w", table, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	t := &ExportTable{Table: table, Columns: cols, Rows: [][]any{}}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				vals[i] = bytesValue{Base64: b}
			}
		}
		t.Rows = append(t.Rows, vals)
	}
	return t, rows.Err()
}

// writeJSONAtomic writes v as JSON to path: temp file, fsync, rename,
// fsync of the directory.
func writeJSONAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := driver.WriteFileAtomic(path, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// Freeze keeps every other writer out of the store until the returned
// function is called, so that an export is one consistent point in
// time: it waits (up to lock_timeout) for the writes and commits under
// way in other processes to finish, then holds the store's lock file
// exclusively, saying who holds it, and the database's write lock.
// Writers in other processes wait for it with a message naming who,
// up to their lock_timeout, then fail with ErrStoreFrozen. Reads, and
// this process's own writes, go on. For export and migrate.
func (s *Store) Freeze(ctx context.Context, who string) (func() error, error) {
	thaw, err := s.db.gate.freeze(ctx, who)
	if err != nil {
		return nil, fmt.Errorf("locking store %s: %w", s.root, err)
	}
	tx, err := s.db.sql.BeginTx(ctx, nil)
	if err != nil {
		thaw()
		return nil, fmt.Errorf("locking store %s: %w", s.root, err)
	}
	// BEGIN IMMEDIATE takes the lock; a write makes sure it is held.
	if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO settings(key, value) VALUES('frozen', ?)`, owner); err != nil {
		thaw()
		return nil, errors.Join(fmt.Errorf("locking store %s: %w", s.root, err), tx.Rollback())
	}
	var once sync.Once
	return func() error {
		var err error
		once.Do(func() {
			if err = tx.Rollback(); errors.Is(err, sql.ErrTxDone) {
				err = nil
			}
			thaw()
		})
		return err
	}, nil
}
