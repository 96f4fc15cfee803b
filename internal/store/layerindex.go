package store

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/internal/archive"
	"github.com/kiln-build/kiln/internal/digestio"
)

// A layer index lists the entries of a layer tar by path, with their
// metadata and, for regular files, where their content starts in the
// uncompressed tar: what a PathView needs to see a layer that exists
// only as a blob without unpacking it. It is read from the tar's headers
// once (seeking past the content of an uncompressed blob) and kept in
// ROOT/layerindex/ID; the layer's tar never changes, so neither does its
// index. GC removes it with the layer.

// layerIndexVersion changes whenever the file format changes.
const layerIndexVersion = 1

// indexFile is the stored form of an index.
type indexFile struct {
	Version   int
	DiffID    digest.Digest
	Entries   []indexRecord
	Whiteouts []string
	Opaque    []string
}

// indexRecord is one entry; paths are absolute and clean ("/a/b").
type indexRecord struct {
	Path   string
	Mode   uint32 // fs.FileMode
	UID    int
	GID    int
	Size   int64
	MTime  int64 // Unix nanoseconds
	Link   string
	Xattrs map[string]string
	Offset int64 // content offset in the uncompressed tar; -1 for none
	Group  int32 // hard-link group: index of the entry holding the content
	Nlink  int32
}

// layerIndex is an index in memory.
type layerIndex struct {
	diffID    digest.Digest
	entries   map[string]*indexRecord
	whiteouts map[string]bool
	opaque    map[string]bool
	children  map[string][]string // directory -> names of entries and whiteouts
	records   []indexRecord
}

// indexCache keeps the indexes this process loaded, by store root and
// layer ID (a layer's tar is fixed by its ID).
var indexCache sync.Map // string -> *layerIndex

func (s *Store) layerIndexPath(id string) string { return filepath.Join(s.root, "layerindex", id) }

// removeLayerIndex forgets a removed layer's index.
func (s *Store) removeLayerIndex(id string) {
	indexCache.Delete(s.root + "\x00" + id)
	_ = os.Remove(s.layerIndexPath(id))
}

// layerIndexOf returns the index of layer l, loading or making it.
func (s *Store) layerIndexOf(ctx context.Context, l Layer) (*layerIndex, error) {
	key := s.root + "\x00" + l.ID
	if v, ok := indexCache.Load(key); ok {
		return v.(*layerIndex), nil
	}
	if idx, err := s.loadLayerIndex(l); err == nil {
		indexCache.Store(key, idx)
		return idx, nil
	}
	idx, err := s.makeLayerIndex(ctx, l)
	if err != nil {
		return nil, fmt.Errorf("indexing layer %s: %w", l.DiffID, err)
	}
	if err := s.saveLayerIndex(l.ID, idx); err != nil {
		s.log.Warn("layer index cannot be kept", "layer", l.DiffID, "error", err)
	}
	indexCache.Store(key, idx)
	return idx, nil
}

func (s *Store) loadLayerIndex(l Layer) (*layerIndex, error) {
	f, err := os.Open(s.layerIndexPath(l.ID))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var file indexFile
	if err := gob.NewDecoder(bufio.NewReader(f)).Decode(&file); err != nil {
		return nil, err
	}
	if file.Version != layerIndexVersion || file.DiffID != l.DiffID {
		return nil, fmt.Errorf("layer index of %s is stale", l.ID)
	}
	return newLayerIndex(file), nil
}

func (s *Store) saveLayerIndex(id string, idx *layerIndex) error {
	if err := os.MkdirAll(filepath.Join(s.root, "layerindex"), 0o700); err != nil {
		return err
	}
	file := indexFile{Version: layerIndexVersion, DiffID: idx.diffID, Entries: idx.records}
	for p := range idx.whiteouts {
		file.Whiteouts = append(file.Whiteouts, p)
	}
	for p := range idx.opaque {
		file.Opaque = append(file.Opaque, p)
	}
	// Written in the store's temp directory, which recovery sweeps.
	f, err := digestio.CreateTemp(filepath.Join(s.root, "tmp"), tmpPrefix()+"layerindex-")
	if err != nil {
		return err
	}
	defer f.Abort()
	bw := bufio.NewWriter(f)
	if err := gob.NewEncoder(bw).Encode(file); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Commit(s.layerIndexPath(id))
}

// makeLayerIndex reads the headers of the layer's tar: from its
// uncompressed blob, seeking past the content, or by decompressing the
// blob it came as.
func (s *Store) makeLayerIndex(ctx context.Context, l Layer) (*layerIndex, error) {
	blob, err := s.openLayerBlob(ctx, l)
	if err != nil {
		return nil, err
	}
	defer blob.Close()
	c := &seekCounter{f: blob.File}
	if blob.digest != l.DiffID {
		rc, err := uncompressed(ctxReader{ctx, blob})
		if err != nil {
			return nil, fmt.Errorf("blob %s: %w", blob.digest, err)
		}
		defer rc.Close()
		c = &seekCounter{r: rc}
	}
	return indexTar(ctx, c, l.DiffID)
}

// seekCounter reads a tar and knows where it is in it: a file is sought
// through (tar skips content by seeking), a stream is read through.
type seekCounter struct {
	f   *os.File
	r   io.Reader
	pos int64
}

func (c *seekCounter) Read(p []byte) (int, error) {
	var n int
	var err error
	if c.f != nil {
		n, err = c.f.Read(p)
	} else {
		n, err = c.r.Read(p)
	}
	c.pos += int64(n)
	return n, err
}

// seekable is a seekCounter over a file: tar.Reader seeks past content.
type seekable struct{ *seekCounter }

func (c seekable) Seek(off int64, whence int) (int64, error) {
	n, err := c.f.Seek(off, whence)
	if err == nil {
		c.pos = n
	}
	return n, err
}

// indexTar reads the headers of the uncompressed tar in c.
func indexTar(ctx context.Context, c *seekCounter, diffID digest.Digest) (*layerIndex, error) {
	var tr *tar.Reader
	if c.f != nil {
		tr = tar.NewReader(seekable{c})
	} else {
		tr = tar.NewReader(c)
	}
	file := indexFile{Version: layerIndexVersion, DiffID: diffID}
	byPath := map[string]int{}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		p := path.Clean("/" + hdr.Name)
		dir, base := path.Split(p)
		dir = path.Clean(dir)
		switch {
		case base == archive.WhiteoutOpaque:
			file.Opaque = append(file.Opaque, dir)
			continue
		case strings.HasPrefix(base, archive.WhiteoutPrefix):
			file.Whiteouts = append(file.Whiteouts, path.Join(dir, strings.TrimPrefix(base, archive.WhiteoutPrefix)))
			continue
		case p == "/":
			continue
		}
		rec := indexRecord{Path: p, Mode: uint32(hdr.FileInfo().Mode()), UID: hdr.Uid, GID: hdr.Gid, Size: hdr.Size,
			MTime: hdr.ModTime.UnixNano(), Offset: -1, Nlink: 1}
		for k, v := range hdr.PAXRecords {
			if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				if rec.Xattrs == nil {
					rec.Xattrs = map[string]string{}
				}
				rec.Xattrs[name] = v
			}
		}
		switch hdr.Typeflag {
		case tar.TypeSymlink:
			rec.Link = hdr.Linkname
		case tar.TypeLink:
			target, ok := byPath[path.Clean("/"+hdr.Linkname)]
			if !ok {
				return nil, fmt.Errorf("hard link %s to %s, which the layer does not hold", hdr.Name, hdr.Linkname)
			}
			t := &file.Entries[target]
			rec = *t
			rec.Path = p
			t.Nlink++
		case tar.TypeReg, tar.TypeRegA:
			rec.Offset = c.pos
		}
		if i, ok := byPath[p]; ok { // a later entry replaces an earlier one
			if hdr.Typeflag != tar.TypeLink {
				rec.Group = int32(i)
			}
			file.Entries[i] = rec
			continue
		}
		if hdr.Typeflag != tar.TypeLink {
			rec.Group = int32(len(file.Entries))
		}
		byPath[p] = len(file.Entries)
		file.Entries = append(file.Entries, rec)
	}
	// Links share their group's count.
	for i := range file.Entries {
		file.Entries[i].Nlink = file.Entries[file.Entries[i].Group].Nlink
	}
	return newLayerIndex(file), nil
}

// newLayerIndex builds the lookup maps of an index; directories that
// entries imply without a header of their own are added as plain ones.
func newLayerIndex(file indexFile) *layerIndex {
	idx := &layerIndex{diffID: file.DiffID, entries: make(map[string]*indexRecord, len(file.Entries)),
		whiteouts: map[string]bool{}, opaque: map[string]bool{}, children: map[string][]string{}, records: file.Entries}
	for i := range file.Entries {
		idx.entries[file.Entries[i].Path] = &file.Entries[i]
	}
	for _, p := range file.Whiteouts {
		idx.whiteouts[p] = true
	}
	for _, p := range file.Opaque {
		idx.opaque[p] = true
	}
	add := func(p string) {
		for p != "/" {
			dir, base := path.Split(p)
			dir = path.Clean(dir)
			kids, seen := idx.children[dir]
			idx.children[dir] = append(kids, base)
			if seen {
				return
			}
			if _, ok := idx.entries[dir]; !ok && dir != "/" {
				idx.entries[dir] = &indexRecord{Path: dir, Mode: uint32(fs.ModeDir | 0o755), Offset: -1, Nlink: 1}
			}
			p = dir
		}
	}
	for i := range file.Entries {
		add(file.Entries[i].Path)
	}
	for p := range idx.whiteouts {
		add(p)
	}
	for dir, kids := range idx.children {
		slices.Sort(kids)
		idx.children[dir] = slices.Compact(kids)
	}
	return idx
}
