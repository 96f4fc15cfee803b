package backup

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/digestio"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store"
)

// ExportOptions shape an export.
type ExportOptions struct {
	Progress Progress
	// Who names the export to writers that wait for it (Export only);
	// "kiln storage export --dir DIR" when empty.
	Who string
}

// Export freezes the store (Freeze), writes everything it holds into
// dir (see Frozen.Export) and thaws it.
func Export(ctx context.Context, st *store.Store, dir string, o ExportOptions) (*Index, error) {
	who := o.Who
	if who == "" {
		who = "kiln storage export --dir " + dir
	}
	f, err := Freeze(ctx, st, who)
	if err != nil {
		return nil, err
	}
	idx, err := f.Export(ctx, dir, o)
	return idx, errors.Join(err, f.Thaw())
}

// Export writes everything the frozen store holds into dir (see Index):
// images with all their names and original blobs, layers, working
// containers with their writes, and the build cache. Running it again on
// the same dir reuses the blobs already there, so an interrupted export
// resumes, and removes what the store no longer has. Other processes may
// go on reading the store.
func (f *Frozen) Export(ctx context.Context, dir string, o ExportOptions) (*Index, error) {
	for _, sub := range []string{"blobs/sha256", "containers"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("creating export directory: %w", err)
		}
	}
	// The old index, if any, stops describing the directory now.
	if err := os.Remove(filepath.Join(dir, indexName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := digestio.SyncDir(dir); err != nil {
		return nil, err
	}
	ex := exporter{st: f.st, dir: dir, progress: o.Progress}
	idx, err := ex.index(ctx)
	if err != nil {
		return nil, err
	}
	if err := ensureDirSpace(dir, idx.Bytes()); err != nil {
		return nil, err
	}
	if err := ex.writeAll(ctx, idx); err != nil {
		return nil, err
	}
	for _, name := range tables {
		t, err := f.st.ReadTable(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("exporting table %s: %w", name, err)
		}
		if t != nil {
			idx.Tables = append(idx.Tables, tableOf(t))
		}
	}
	if err := writeJSON(filepath.Join(dir, indexName), idx); err != nil {
		return nil, fmt.Errorf("writing export index: %w", err)
	}
	ex.removeStale(idx)
	return idx, nil
}

// exporter writes the files of one export.
type exporter struct {
	st       *store.Store
	dir      string
	progress Progress
}

// index describes what the store holds as an export index, without
// files (container diffs are filled in as they are written).
func (ex *exporter) index(ctx context.Context) (*Index, error) {
	in, err := ex.st.Inventory(ctx)
	if err != nil {
		return nil, err
	}
	idx := &Index{Format: Format, Version: Version, Created: time.Now().UTC(), Driver: ex.st.Driver().Name(), Root: ex.st.Root()}
	var tops []string
	for _, img := range in.Images {
		tops = append(tops, img.TopLayer)
	}
	for _, c := range in.Containers {
		tops = append(tops, c.Layer)
	}
	used := reachable(in.Layers, tops)
	for _, l := range in.Layers {
		if !used[l.ID] {
			continue // nothing uses it: GC takes it
		}
		el := Layer{ID: l.ID, Parent: l.Parent, DiffID: l.DiffID, Size: l.Size, Created: l.Created.UTC(), MTimeBound: l.MTimeBound}
		for _, b := range in.LayerBlobs[l.ID] {
			if ex.st.HasBlob(b.Digest) {
				el.Blobs = append(el.Blobs, Blob{Digest: b.Digest, MediaType: b.MediaType, Size: b.Size})
			}
		}
		if len(el.Blobs) == 0 {
			el.Tar = &Blob{Digest: l.DiffID, MediaType: image.MediaTypeOCILayer, Size: l.Size}
		}
		idx.Layers = append(idx.Layers, el)
	}
	for _, img := range in.Images {
		ei := Image{ID: img.ID, TopLayer: img.TopLayer, ManifestDigest: img.ManifestDigest, ManifestType: img.ManifestType,
			Created: img.Created.UTC(), Size: img.Size, Config: ex.blobEntry(img.ConfigDigest()), Manifest: ex.blobEntry(img.ManifestDigest)}
		for _, n := range img.Names {
			ei.Names = append(ei.Names, Name{Name: n, Added: in.NameAdded[n]})
		}
		idx.Images = append(idx.Images, ei)
	}
	for _, c := range in.Containers {
		count := c.MountCount
		if count > 0 && ex.st.MountedAt(ctx, c.ID) == "" {
			count = 0 // its mount is gone (a reboot)
		}
		idx.Containers = append(idx.Containers, Container{ID: c.ID, Name: c.Name, ImageID: c.ImageID, Layer: c.Layer,
			Created: c.Created.UTC(), MountCount: count, Data: c.Data})
	}
	return idx, nil
}

// reachable returns the layers in the chains of tops.
func reachable(layers []store.Layer, tops []string) map[string]bool {
	parent := make(map[string]string, len(layers))
	for _, l := range layers {
		parent[l.ID] = l.Parent
	}
	seen := map[string]bool{}
	for _, top := range tops {
		for cur := top; cur != "" && !seen[cur]; cur = parent[cur] {
			seen[cur] = true
		}
	}
	return seen
}

func (ex *exporter) blobEntry(d digest.Digest) Blob {
	size, _ := ex.st.BlobSize(d) // a missing blob fails the copy, saying so
	return Blob{Digest: d, Size: size}
}

// ensureDirSpace refuses to start writing need bytes into dir when its
// filesystem does not have them.
func ensureDirSpace(dir string, need int64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("measuring free space of %s: %w", dir, err)
	}
	if free := int64(st.Bavail) * st.Bsize; free < need {
		return fmt.Errorf("%s has %s free and the export needs about %s: %w", dir, store.HumanBytes(free), store.HumanBytes(need), store.ErrNoSpace)
	}
	return nil
}

func (ex *exporter) writeAll(ctx context.Context, idx *Index) error {
	for _, img := range idx.Images {
		for _, b := range []Blob{img.Config, img.Manifest} {
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

func (ex *exporter) writeLayer(ctx context.Context, l Layer, item string) error {
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
	layer, err := ex.st.Layer(ctx, l.ID)
	if err != nil {
		return err
	}
	_, err = ex.writeFile(blobPath(ex.dir, l.DiffID), item, l.Size, func(w io.Writer) error { return ex.st.LayerTar(ctx, layer, w) })
	return err
}

// present reports whether an earlier, interrupted run already wrote b.
func (ex *exporter) present(b Blob) bool {
	fi, err := os.Stat(blobPath(ex.dir, b.Digest))
	return err == nil && fi.Size() == b.Size
}

// copyBlob copies a store blob into the export, checking its digest on
// the way: a corrupt blob stops the export instead of spreading.
func (ex *exporter) copyBlob(ctx context.Context, b Blob, item string) error {
	if item == "" {
		item = "blob " + shortDigest(b.Digest)
	}
	if ex.present(b) {
		ex.report(ProgressEvent{Item: item, Done: b.Size, Total: b.Size, Finished: true})
		return nil
	}
	f, err := ex.st.OpenBlob(b.Digest)
	if err != nil {
		return err
	}
	defer f.Close()
	path := blobPath(ex.dir, b.Digest)
	got, err := ex.writeFile(path, item, b.Size, func(w io.Writer) error {
		_, err := io.Copy(w, ctxReader{ctx, f})
		return err
	})
	if err == nil && got.digest != b.Digest {
		_ = os.Remove(path)
		err = fmt.Errorf("blob %s in the store: %w (it hashes to %s): run `kiln storage check --digests --repair`", b.Digest, store.ErrDigestMismatch, got.digest)
	}
	return err
}

func (ex *exporter) writeContainer(ctx context.Context, c *Container) error {
	// Where the container's tree is at hand, its files' xattrs go in
	// whole: not every driver's diff keeps them.
	root := ex.st.MountedAt(ctx, c.ID)
	got, err := ex.writeFile(containerPath(ex.dir, c.ID), "container "+c.Name, 0, func(w io.Writer) error {
		if root == "" {
			return ex.st.ContainerDiff(ctx, c.ID, w)
		}
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(ex.st.ContainerDiff(ctx, c.ID, pw)) }()
		err := withXattrs(ctx, w, pr, root)
		pr.CloseWithError(err)
		return err
	})
	if err != nil {
		return err
	}
	c.Diff = Blob{Digest: got.digest, Size: got.size, MediaType: image.MediaTypeOCILayer}
	return nil
}

type written struct {
	digest digest.Digest
	size   int64
}

// writeFile writes path atomically from fill, hashing and reporting
// progress as it goes.
func (ex *exporter) writeFile(path, item string, total int64, fill func(io.Writer) error) (written, error) {
	pw := &progressWriter{item: item, total: total, report: ex.report}
	w, err := writeAtomic(path, func(w io.Writer) error { return fill(io.MultiWriter(w, pw)) })
	if err != nil {
		return written{}, err
	}
	pw.finish()
	return w, nil
}

// writeAtomic writes path (mode 0600) from fill through
// digestio.WriteAtomic, and returns the digest and size of what it wrote.
func writeAtomic(path string, fill func(io.Writer) error) (written, error) {
	h := sha256.New()
	cw := &countWriter{}
	if err := digestio.WriteAtomic(path, 0o600, func(w io.Writer) error { return fill(io.MultiWriter(w, h, cw)) }); err != nil {
		return written{}, err
	}
	return written{digest: digest.NewDigest(digest.SHA256, h), size: cw.n}, nil
}

// writeJSON writes v as JSON to path atomically.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return digestio.WriteFileAtomic(path, append(b, '\n'), 0o600)
}

func (ex *exporter) report(e ProgressEvent) {
	if ex.progress != nil {
		ex.progress(e)
	}
}

// removeStale deletes files of earlier exports the index does not name.
func (ex *exporter) removeStale(idx *Index) {
	keep := map[string]bool{}
	for _, f := range idx.files(ex.dir) {
		keep[f.path] = true
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

// tableOf is a table as the index carries it: byte strings as base64.
func tableOf(t *store.TableRows) Table {
	for _, row := range t.Rows {
		for i, v := range row {
			if b, ok := v.([]byte); ok {
				row[i] = bytesValue{Base64: b}
			}
		}
	}
	return Table{Table: t.Table, Columns: t.Columns, Rows: t.Rows}
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

type countWriter struct{ n int64 }

func (c *countWriter) Write(b []byte) (int, error) {
	c.n += int64(len(b))
	return len(b), nil
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
