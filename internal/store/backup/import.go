package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/internal/store"
)

// ReadIndex reads and checks the index of the export in dir: its format
// and version, and that every file it names is there with its size.
func ReadIndex(dir string) (*Index, error) {
	b, err := os.ReadFile(filepath.Join(dir, indexName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w (no %s: the export did not finish)", dir, ErrNotExport, indexName)
	}
	if err != nil {
		return nil, err
	}
	var idx Index
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // build cache times are nanoseconds: beyond float64
	if err := dec.Decode(&idx); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", dir, ErrNotExport, err)
	}
	if idx.Format != Format || idx.Version < 1 {
		return nil, fmt.Errorf("%s: %w (format %q version %d)", dir, ErrNotExport, idx.Format, idx.Version)
	}
	if idx.Version > Version {
		return nil, fmt.Errorf("%s: export format version %d is newer than this kiln reads (%d)", dir, idx.Version, Version)
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

// Import adds everything of the export in dir to st: every blob checked
// against its digest and every layer against its diff ID, so image IDs
// and manifest digests come out identical. A layer is recorded as the
// blob it came as, its files made when something needs them. It is
// idempotent: what exists is kept, so running it again after an
// interruption finishes the job.
func Import(ctx context.Context, st *store.Store, dir string, o ImportOptions) (ImportReport, error) {
	var rep ImportReport
	idx, err := ReadIndex(dir)
	if err != nil {
		return rep, err
	}
	if err := st.EnsureSpace(ctx, idx.Bytes()); err != nil {
		return rep, err
	}
	im := importer{st: st, dir: dir, progress: o.Progress}
	defer func() { _ = st.Release(context.WithoutCancel(ctx), im.held...) }()
	for i, l := range idx.Layers {
		item := fmt.Sprintf("layer %d/%d %s", i+1, len(idx.Layers), shortDigest(l.DiffID))
		added, err := im.layer(ctx, l, item)
		if err != nil {
			return rep, fmt.Errorf("importing layer %s: %w", l.ID, st.NoSpace(ctx, err))
		}
		rep.Layers += added
	}
	for _, img := range idx.Images {
		added, err := im.image(ctx, img)
		if err != nil {
			return rep, fmt.Errorf("importing image %s: %w", img.ID, st.NoSpace(ctx, err))
		}
		if added {
			rep.Images++
		}
	}
	for _, c := range idx.Containers {
		added, err := im.container(ctx, c, o.Mount)
		if err != nil {
			return rep, fmt.Errorf("importing container %s: %w", c.Name, st.NoSpace(ctx, err))
		}
		if added {
			rep.Containers++
		}
	}
	for _, t := range idx.Tables {
		n, err := st.LoadTable(ctx, store.TableRows{Table: t.Table, Columns: t.Columns, Rows: jsonRows(t.Rows)})
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
	st       *store.Store
	dir      string
	progress Progress
	held     []string // layers recorded, held until the images name them
}

func (im *importer) report(e ProgressEvent) {
	if im.progress != nil {
		im.progress(e)
	}
}

// putBlob stores a blob of the export, checking its digest.
func (im *importer) putBlob(ctx context.Context, b Blob) error {
	if im.st.HasBlob(b.Digest) {
		return nil
	}
	f, err := os.Open(blobPath(im.dir, b.Digest))
	if err != nil {
		return err
	}
	defer f.Close()
	_, _, err = im.st.PutBlob(ctx, b.Digest, f)
	return err
}

// layer records one layer unless the store has it, and its blobs. A new
// layer is recorded as its blobs, the first of them (the one it came as)
// checked against the diff ID as it is copied in; its files are made when
// something needs them.
func (im *importer) layer(ctx context.Context, l Layer, item string) (int, error) {
	if got := store.ChainID(l.Parent, l.DiffID); got != l.ID {
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
	if _, err := im.st.Layer(ctx, l.ID); err != nil {
		origin := blobs[0]
		if err := im.putOrigin(ctx, l, origin, item); err != nil {
			return 0, err
		}
		if _, err := im.st.AddBlobLayer(ctx, l.Parent, l.DiffID, l.Size, store.LayerBlob{Digest: origin.Digest, MediaType: origin.MediaType, Size: origin.Size}); err != nil {
			return 0, err
		}
		im.held = append(im.held, l.ID)
		if err := im.st.SetLayerTimes(ctx, l.ID, l.Created, l.MTimeBound); err != nil {
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
		if err := im.st.AddLayerBlob(ctx, l.ID, store.LayerBlob{Digest: b.Digest, MediaType: b.MediaType, Size: b.Size}); err != nil {
			return added, err
		}
	}
	return added, nil
}

// putOrigin copies in the blob a new layer is recorded as, checking
// that it decompresses to the layer's tar.
func (im *importer) putOrigin(ctx context.Context, l Layer, b Blob, item string) error {
	f, err := os.Open(blobPath(im.dir, b.Digest))
	if err != nil {
		return err
	}
	defer f.Close()
	pw := &progressWriter{item: item, total: b.Size, report: im.report}
	if err := im.st.PutLayerBlob(ctx, b.Digest, l.DiffID, io.TeeReader(f, pw)); err != nil {
		return err
	}
	pw.finish()
	return nil
}

// image records an image with its names and their times; its layers are
// in already.
func (im *importer) image(ctx context.Context, img Image) (bool, error) {
	for _, b := range []Blob{img.Config, img.Manifest} {
		if err := im.putBlob(ctx, b); err != nil {
			return false, err
		}
	}
	if img.Config.Digest.Encoded() != img.ID || img.Manifest.Digest != img.ManifestDigest {
		return false, fmt.Errorf("export index is damaged: image %s has config %s and manifest %s", img.ID, img.Config.Digest, img.Manifest.Digest)
	}
	rec := store.Image{ID: img.ID, TopLayer: img.TopLayer, ManifestDigest: img.ManifestDigest, ManifestType: img.ManifestType,
		Created: img.Created, Size: img.Size}
	added := map[string]time.Time{}
	for _, n := range img.Names {
		rec.Names = append(rec.Names, n.Name)
		added[n.Name] = n.Added
	}
	return im.st.RestoreImage(ctx, rec, added)
}

// container makes a working container with the export's ID, name, state
// and writes, unless the store has it already, and mounts it again when
// mount is set and it was mounted.
func (im *importer) container(ctx context.Context, c Container, mount bool) (bool, error) {
	f, err := os.Open(containerPath(im.dir, c.ID))
	if err != nil {
		return false, err
	}
	defer f.Close()
	pw := &progressWriter{item: "container " + c.Name, total: c.Diff.Size, report: im.report}
	diff := &verifyingReader{r: f, h: sha256.New(), want: c.Diff.Digest, what: "writes of container " + c.Name, progress: pw}
	rec := store.Container{ID: c.ID, Name: c.Name, ImageID: c.ImageID, Layer: c.Layer, Created: c.Created, Data: c.Data}
	added, err := im.st.RestoreContainer(ctx, rec, diff, c.Diff.Size)
	if err != nil || !added {
		return false, err
	}
	pw.finish()
	if mount && c.MountCount > 0 {
		return true, im.st.RestoreMount(ctx, c.ID, c.MountCount)
	}
	return true, nil
}

// verifyingReader reads r, reporting progress, and at its end returns
// ErrDigestMismatch instead of io.EOF when what it read does not hash to
// want.
type verifyingReader struct {
	r        io.Reader
	h        hash.Hash
	want     digest.Digest
	what     string
	progress *progressWriter
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	if n > 0 {
		v.h.Write(p[:n])
		v.progress.Write(p[:n])
	}
	if errors.Is(err, io.EOF) {
		if got := digest.NewDigest(digest.SHA256, v.h); got != v.want {
			return n, fmt.Errorf("%s: %w (the export's tar hashes to %s)", v.what, store.ErrDigestMismatch, got)
		}
	}
	return n, err
}

// jsonRows turns decoded JSON values back into what a table held:
// integers where they are integers, floats otherwise, and byte strings.
func jsonRows(rows [][]any) [][]any {
	out := make([][]any, len(rows))
	for r, row := range rows {
		out[r] = make([]any, len(row))
		for i, v := range row {
			out[r][i] = v
			switch v := v.(type) {
			case json.Number:
				if k, err := v.Int64(); err == nil {
					out[r][i] = k
				} else if f, err := v.Float64(); err == nil {
					out[r][i] = f
				}
			case map[string]any:
				if b64, ok := v["base64"].(string); ok {
					if b, err := base64.StdEncoding.DecodeString(b64); err == nil {
						out[r][i] = b
					}
				}
			}
		}
	}
	return out
}
