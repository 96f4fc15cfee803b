package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/internal/store/driver"
)

// ErrNotExport: the directory holds no (complete) export.
var ErrNotExport = errors.New("not a kiln storage export")

// ReadExportIndex reads and checks the index of the export in dir: its
// format and version, and that every file it names is there with its size.
func ReadExportIndex(dir string) (*ExportIndex, error) {
	b, err := os.ReadFile(filepath.Join(dir, exportIndexName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w (no %s: the export did not finish)", dir, ErrNotExport, exportIndexName)
	}
	if err != nil {
		return nil, err
	}
	var idx ExportIndex
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // build cache times are nanoseconds: beyond float64
	if err := dec.Decode(&idx); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", dir, ErrNotExport, err)
	}
	if idx.Format != ExportFormat || idx.Version < 1 {
		return nil, fmt.Errorf("%s: %w (format %q version %d)", dir, ErrNotExport, idx.Format, idx.Version)
	}
	if idx.Version > ExportVersion {
		return nil, fmt.Errorf("%s: export format version %d is newer than this kiln reads (%d)", dir, idx.Version, ExportVersion)
	}
	for _, f := range idx.files(dir) {
		fi, err := os.Stat(f.path)
		if err != nil {
			return nil, fmt.Errorf("export %s is incomplete: %w", dir, err)
		}
		if fi.Size() != f.size {
			return nil, fmt.Errorf("export %s: %s is %d bytes, the index says %d", dir, f.path, fi.Size(), f.size)
		}
	}
	return &idx, nil
}

type exportFile struct {
	path string
	size int64
}

// files lists every file the index names, with its size.
func (idx *ExportIndex) files(dir string) []exportFile {
	blob := func(b ExportBlob) exportFile {
		return exportFile{filepath.Join(dir, "blobs", b.Digest.Algorithm().String(), b.Digest.Encoded()), b.Size}
	}
	var out []exportFile
	for _, l := range idx.Layers {
		for _, b := range l.Blobs {
			out = append(out, blob(b))
		}
		if l.Tar != nil {
			out = append(out, blob(*l.Tar))
		}
	}
	for _, img := range idx.Images {
		out = append(out, blob(img.Config), blob(img.Manifest))
	}
	for _, c := range idx.Containers {
		out = append(out, exportFile{filepath.Join(dir, "containers", c.ID+".tar"), c.Diff.Size})
	}
	return out
}

// Bytes is the size of every file of the export.
func (idx *ExportIndex) Bytes() int64 {
	var n int64
	for _, f := range idx.files("") {
		n += f.size
	}
	return n
}

// ImportOptions shape an import.
type ImportOptions struct {
	Progress Progress
	// Mount mounts again the containers that were mounted when exported.
	Mount bool
}

// ImportReport counts what an import added (things already in the store
// are not counted).
type ImportReport struct {
	Layers, Images, Containers, CacheEntries int
}

// Import adds everything of the export in dir to the store: every blob
// checked against its digest and every layer against its diff ID, so
// image IDs and manifest digests come out identical. It is idempotent:
// what exists is kept, so running it again after an interruption
// finishes the job.
func (s *Store) Import(ctx context.Context, dir string, o ImportOptions) (ImportReport, error) {
	var rep ImportReport
	idx, err := ReadExportIndex(dir)
	if err != nil {
		return rep, err
	}
	if err := s.EnsureSpace(ctx, idx.Bytes()); err != nil {
		return rep, err
	}
	im := importer{s: s, dir: dir, idx: idx, progress: o.Progress}
	defer func() { _ = s.Release(context.WithoutCancel(ctx), im.held...) }()
	for i, l := range idx.Layers {
		item := fmt.Sprintf("layer %d/%d %s", i+1, len(idx.Layers), shortDigest(l.DiffID))
		added, err := im.layer(ctx, l, item)
		if err != nil {
			return rep, fmt.Errorf("importing layer %s: %w", l.ID, s.noSpace(ctx, err))
		}
		rep.Layers += added
	}
	for _, img := range idx.Images {
		added, err := im.image(ctx, img)
		if err != nil {
			return rep, fmt.Errorf("importing image %s: %w", img.ID, s.noSpace(ctx, err))
		}
		rep.Images += added
	}
	for _, c := range idx.Containers {
		added, err := im.container(ctx, c, o.Mount)
		if err != nil {
			return rep, fmt.Errorf("importing container %s: %w", c.Name, s.noSpace(ctx, err))
		}
		rep.Containers += added
	}
	for _, t := range idx.Tables {
		n, err := s.loadTable(ctx, t)
		if err != nil {
			return rep, fmt.Errorf("importing table %s: %w", t.Table, err)
		}
		if t.Table == "build_cache" {
			rep.CacheEntries = n
		}
	}
	return rep, nil
}

type importer struct {
	s        *Store
	dir      string
	idx      *ExportIndex
	progress Progress
	held     []string // layers recorded, held until the images name them
}

func (im *importer) blobFile(d digest.Digest) string {
	return filepath.Join(im.dir, "blobs", d.Algorithm().String(), d.Encoded())
}

func (im *importer) report(e ProgressEvent) {
	if im.progress != nil {
		im.progress(e)
	}
}

// putBlob stores a blob of the export, checking its digest.
func (im *importer) putBlob(ctx context.Context, b ExportBlob) error {
	if im.s.HasBlob(b.Digest) {
		return nil
	}
	f, err := os.Open(im.blobFile(b.Digest))
	if err != nil {
		return err
	}
	defer f.Close()
	_, _, err = im.s.PutBlob(ctx, b.Digest, f)
	return err
}

// layer records one layer unless the store has it, and its blobs. A new
// layer is recorded as its blobs, the first of them (the one it came as)
// checked against the diff ID as it is copied in; its files are made when
// something needs them.
func (im *importer) layer(ctx context.Context, l ExportLayer, item string) (int, error) {
	if got := ChainID(l.Parent, l.DiffID); got != l.ID {
		return 0, fmt.Errorf("export index is damaged: layer %s has chain ID %s", l.ID, got)
	}
	blobs := l.Blobs
	if l.Tar != nil {
		blobs = append(blobs, *l.Tar)
	}
	if len(blobs) == 0 {
		return 0, fmt.Errorf("export index is damaged: layer %s has no blob", l.ID)
	}
	added := 0
	if _, err := im.s.Layer(ctx, l.ID); err != nil {
		origin := blobs[0]
		if err := im.putOrigin(ctx, l, origin, item); err != nil {
			return 0, err
		}
		if _, err := im.s.AddBlobLayer(ctx, l.Parent, l.DiffID, l.Size, LayerBlob{Digest: origin.Digest, MediaType: origin.MediaType, Size: origin.Size}); err != nil {
			return 0, err
		}
		im.held = append(im.held, l.ID)
		if err := im.setTimes(ctx, l); err != nil {
			return 0, err
		}
		added = 1
	} else {
		im.report(ProgressEvent{Item: item, Done: l.Size, Total: l.Size, Finished: true})
	}
	for _, b := range blobs[added:] {
		if err := im.putBlob(ctx, b); err != nil {
			return added, err
		}
		if err := im.s.AddLayerBlob(ctx, l.ID, LayerBlob{Digest: b.Digest, MediaType: b.MediaType, Size: b.Size}); err != nil {
			return added, err
		}
	}
	return added, nil
}

// putOrigin copies in the blob a new layer is recorded as, checking
// that it decompresses to the layer's tar.
func (im *importer) putOrigin(ctx context.Context, l ExportLayer, b ExportBlob, item string) error {
	f, err := os.Open(im.blobFile(b.Digest))
	if err != nil {
		return err
	}
	defer f.Close()
	pr := &progressReader{r: f, w: progressWriter{item: item, total: b.Size, report: im.report}}
	_, _, c, err := im.s.putLayerBlob(ctx, b.Digest, pr)
	if err != nil {
		return err
	}
	if c.diffID != l.DiffID {
		return fmt.Errorf("blob %s: %w: it holds the tar %s, the export index says %s", b.Digest, ErrDigestMismatch, c.diffID, l.DiffID)
	}
	pr.w.finish()
	return nil
}

// setTimes keeps the layer's creation time and mtime bound as exported.
func (im *importer) setTimes(ctx context.Context, l ExportLayer) error {
	var bound any
	if l.MTimeBound != nil {
		bound = l.MTimeBound.Unix()
	}
	return im.s.db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE layers SET created=?, mtime_bound=? WHERE id=?`, l.Created.UnixNano(), bound, l.ID)
		return err
	})
}

type progressReader struct {
	r io.Reader
	w progressWriter
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.w.Write(b[:n])
	}
	return n, err
}

// image records an image with its names and their times; its layers are
// in already.
func (im *importer) image(ctx context.Context, img ExportImage) (int, error) {
	for _, b := range []ExportBlob{img.Config, img.Manifest} {
		if err := im.putBlob(ctx, b); err != nil {
			return 0, err
		}
	}
	if img.Config.Digest.Encoded() != img.ID {
		return 0, fmt.Errorf("export index is damaged: image %s has config %s", img.ID, img.Config.Digest)
	}
	if img.TopLayer != "" {
		if _, err := im.s.Layer(ctx, img.TopLayer); err != nil {
			return 0, err
		}
	}
	added := 0
	err := im.s.db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO images(id, top_layer, manifest_digest, manifest_type, created, size) VALUES(?,?,?,?,?,?)
			ON CONFLICT(id) DO NOTHING`, img.ID, img.TopLayer, img.Manifest.Digest, img.ManifestType, img.Created.UnixNano(), img.Size)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			added = 1
		}
		for _, n := range img.Names {
			if _, err := tx.ExecContext(ctx, `INSERT INTO names(name, image_id, added) VALUES(?,?,?)
				ON CONFLICT(name) DO UPDATE SET image_id=excluded.image_id, added=excluded.added`, n.Name, img.ID, n.Added.UnixNano()); err != nil {
				return err
			}
		}
		return nil
	})
	return added, err
}

// container makes a working container with the export's ID, name, state
// and writes, unless the store has it already.
func (im *importer) container(ctx context.Context, c ExportContainer, mount bool) (int, error) {
	var id string
	err := im.s.db.sql.QueryRowContext(ctx, `SELECT id FROM containers WHERE name=? OR id=?`, c.Name, c.ID).Scan(&id)
	switch {
	case err == nil && id == c.ID:
		if _, err := im.s.Container(ctx, c.ID); err == nil {
			return 0, nil // imported before
		}
		return 0, fmt.Errorf("container %s is being made or removed by another kiln process", c.Name)
	case err == nil:
		return 0, fmt.Errorf("container name %q: %w by container %s", c.Name, ErrNameInUse, id)
	case !errors.Is(err, sql.ErrNoRows):
		return 0, err
	}
	if err := im.s.EnsureSpace(ctx, c.Diff.Size); err != nil {
		return 0, err
	}
	err = im.s.db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO containers(id, name, image_id, layer, state, owner, created, data) VALUES(?,?,?,?,?,?,?,?)`,
			c.ID, c.Name, c.ImageID, c.Layer, "incomplete", owner, c.Created.UnixNano(), c.Data)
		return err
	})
	if err != nil {
		return 0, err
	}
	if err := im.fillContainer(ctx, c); err != nil {
		return 0, errors.Join(err, im.s.removeContainerFiles(context.WithoutCancel(ctx), c.ID))
	}
	if err := im.s.setState(ctx, c.ID, "complete"); err != nil {
		return 0, err
	}
	if mount && c.MountCount > 0 {
		return 1, im.s.RestoreMount(ctx, c.ID, c.MountCount)
	}
	return 1, nil
}

func (im *importer) fillContainer(ctx context.Context, c ExportContainer) error {
	if _, lazy := im.s.driver.(driver.ParentAtMount); !lazy {
		if err := im.s.EnsureFiles(ctx, c.Layer); err != nil {
			return err
		}
	}
	if err := im.s.driver.Create(ctx, c.ID, c.Layer); err != nil {
		return err
	}
	f, err := os.Open(filepath.Join(im.dir, "containers", c.ID+".tar"))
	if err != nil {
		return err
	}
	defer f.Close()
	h := newCountingHash()
	pr := &progressReader{r: io.TeeReader(f, h), w: progressWriter{item: "container " + c.Name, total: c.Diff.Size, report: im.report}}
	if _, err := im.s.driver.ApplyDiff(ctx, c.ID, pr); err != nil {
		return err
	}
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := h.digest(); got != c.Diff.Digest {
		return fmt.Errorf("writes of container %s: %w (the export's tar hashes to %s)", c.Name, ErrDigestMismatch, got)
	}
	pr.w.finish()
	return nil
}

// RestoreMount mounts the container and sets its mount count to count,
// as it was in the store it came from.
func (s *Store) RestoreMount(ctx context.Context, id string, count int) error {
	if _, err := s.Mount(ctx, id); err != nil {
		return err
	}
	return s.updateContainer(ctx, id, `UPDATE containers SET mount_count=? WHERE id=?`, count, id)
}

// loadTable inserts the rows of an exported table that the store's own
// table of that name has columns for; rows whose key exists are kept.
func (s *Store) loadTable(ctx context.Context, t ExportTable) (int, error) {
	if len(t.Rows) == 0 {
		return 0, nil
	}
	if ok, err := hasTable(ctx, s.db.sql, t.Table); err != nil || !ok {
		return 0, err
	}
	for _, c := range t.Columns {
		if !validColumn(c) {
			return 0, fmt.Errorf("export index is damaged: column %q", c)
		}
	}
	marks := strings.TrimSuffix(strings.Repeat("?,", len(t.Columns)), ",")
	q := `INSERT OR IGNORE INTO ` + t.Table + `(` + strings.Join(t.Columns, ",") + `) VALUES(` + marks + `)`
	n := 0
	err := s.db.tx(ctx, func(tx *sql.Tx) error {
		for _, row := range t.Rows {
			res, err := tx.ExecContext(ctx, q, jsonValues(row)...)
			if err != nil {
				return err
			}
			if k, _ := res.RowsAffected(); k == 1 {
				n++
			}
		}
		return nil
	})
	return n, err
}

func validColumn(c string) bool {
	for _, r := range c {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return c != ""
}

// jsonValues turns decoded JSON values back into what the table held:
// integers where they are integers, floats otherwise, and byte strings.
func jsonValues(row []any) []any {
	out := make([]any, len(row))
	for i, v := range row {
		out[i] = v
		switch v := v.(type) {
		case json.Number:
			if k, err := v.Int64(); err == nil {
				out[i] = k
			} else if f, err := v.Float64(); err == nil {
				out[i] = f
			}
		case map[string]any:
			if b64, ok := v["base64"].(string); ok {
				if b, err := base64.StdEncoding.DecodeString(b64); err == nil {
					out[i] = b
				}
			}
		}
	}
	return out
}

// VerifyImport checks that the store holds everything the export in idx
// describes: every layer, every image with its manifest and names, every
// container with its name, layer and state. Migrate runs it before it
// switches stores.
func (s *Store) VerifyImport(ctx context.Context, idx *ExportIndex) error {
	in, err := s.readInventory(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, l := range idx.Layers {
		if got, ok := in.layers[l.ID]; !ok || got.DiffID != l.DiffID {
			errs = append(errs, fmt.Errorf("layer %s is missing", l.ID))
		}
	}
	images := map[string]Image{}
	for _, img := range in.images {
		images[img.ID] = img
	}
	for _, want := range idx.Images {
		got, ok := images[want.ID]
		if !ok || got.ManifestDigest != want.ManifestDigest || got.TopLayer != want.TopLayer {
			errs = append(errs, fmt.Errorf("image %s is missing or differs", want.ID))
			continue
		}
		have := map[string]bool{}
		for _, n := range got.Names {
			have[n] = true
		}
		for _, n := range want.Names {
			if !have[n.Name] {
				errs = append(errs, fmt.Errorf("image %s lost its name %s", want.ID, n.Name))
			}
		}
	}
	ctrs := map[string]Container{}
	for _, c := range in.containers {
		ctrs[c.ID] = c
	}
	for _, want := range idx.Containers {
		got, ok := ctrs[want.ID]
		if !ok || got.Name != want.Name || got.Layer != want.Layer || !bytes.Equal(got.Data, want.Data) {
			errs = append(errs, fmt.Errorf("container %s is missing or differs", want.Name))
		}
	}
	return errors.Join(errs...)
}
