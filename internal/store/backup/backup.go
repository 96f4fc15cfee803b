// Package backup writes a whole store into a directory and reads it back
// into a store of any driver: every image with its names and original
// blobs, every layer, every working container with its writes, and the
// build cache. An export is one point in time: it keeps the store's
// writers out (Freeze) while it reads. Driver migration is an export and
// an import.
package backup

import (
	"errors"
	"path/filepath"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// The export directory format (docs/storage.md describes it):
//
//	DIR/index.json              Index, written last
//	DIR/blobs/sha256/HEX        manifests, configs, layer blobs, layer tars
//	DIR/containers/ID.tar       each working container's writes
//
// A directory without index.json is not an export (yet): every file is
// written to a temp name, fsynced and renamed, and the index is renamed
// into place only after all of them.
const (
	Format    = "kiln-storage-export"
	Version   = 1
	indexName = "index.json"
)

// ErrNotExport: the directory holds no (complete) export.
var ErrNotExport = errors.New("not a kiln storage export")

// Index describes an export: everything a store held.
type Index struct {
	Format     string      `json:"format"`
	Version    int         `json:"version"`
	Created    time.Time   `json:"created"`
	Driver     string      `json:"driver"` // the driver of the store exported
	Root       string      `json:"root"`
	Layers     []Layer     `json:"layers"` // parents before children
	Images     []Image     `json:"images"`
	Containers []Container `json:"containers"`
	Tables     []Table     `json:"tables,omitempty"`
}

// tables are the store's tables an export carries row by row, when the
// store has them, in the order they are loaded back.
var tables = []string{"build_cache", "manifest_lists", "manifest_list_instances"}

// Blob is one blob file of an export.
type Blob struct {
	Digest    digest.Digest `json:"digest"`
	MediaType string        `json:"mediaType,omitempty"`
	Size      int64         `json:"size"`
}

// Layer is a layer; it is recorded as its first blob, or as Tar (its
// uncompressed tar, made from the snapshot) when it had no blob.
type Layer struct {
	ID         string        `json:"id"`
	Parent     string        `json:"parent,omitempty"`
	DiffID     digest.Digest `json:"diffID"`
	Size       int64         `json:"size"`
	Created    time.Time     `json:"created"`
	MTimeBound *time.Time    `json:"mtimeBound,omitempty"`
	Blobs      []Blob        `json:"blobs,omitempty"`
	Tar        *Blob         `json:"tar,omitempty"`
}

// Image is an image: its config and manifest are blobs of the export.
type Image struct {
	ID             string        `json:"id"`
	TopLayer       string        `json:"topLayer,omitempty"`
	ManifestDigest digest.Digest `json:"manifestDigest"`
	ManifestType   string        `json:"manifestType"`
	Created        time.Time     `json:"created"`
	Size           int64         `json:"size"`
	Names          []Name        `json:"names,omitempty"`
	Config         Blob          `json:"config"`
	Manifest       Blob          `json:"manifest"`
}

// Name is one name of an image, with when it was given.
type Name struct {
	Name  string    `json:"name"`
	Added time.Time `json:"added"`
}

// Container is a working container; Diff is the tar of its writes
// (ownership, modes, xattrs, whiteouts) against its layer.
type Container struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	ImageID    string    `json:"imageID,omitempty"`
	Layer      string    `json:"layer,omitempty"`
	Created    time.Time `json:"created"`
	MountCount int       `json:"mountCount"`
	Data       []byte    `json:"data"` // the container's state, byte for byte
	Diff       Blob      `json:"diff"`
}

// Table is a table exported row by row (the build cache, manifest
// lists). Byte-string values are written as {"base64": "..."}.
type Table struct {
	Table   string   `json:"table"`
	Columns []string `json:"columns"`
	Rows    [][]any  `json:"rows"`
}

// bytesValue is how a byte-string column value appears in a Table.
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

func blobPath(dir string, d digest.Digest) string {
	return filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded())
}

func containerPath(dir, id string) string {
	return filepath.Join(dir, "containers", id+".tar")
}

type exportFile struct {
	path string
	size int64
}

// files lists every file the index names, with its size.
func (idx *Index) files(dir string) []exportFile {
	blob := func(b Blob) exportFile { return exportFile{blobPath(dir, b.Digest), b.Size} }
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
		out = append(out, exportFile{containerPath(dir, c.ID), c.Diff.Size})
	}
	return out
}

// Bytes is the size of every file of the export.
func (idx *Index) Bytes() int64 {
	var n int64
	for _, f := range idx.files("") {
		n += f.size
	}
	return n
}

func shortDigest(d digest.Digest) string {
	if e := d.Encoded(); len(e) >= 12 {
		return e[:12]
	}
	return string(d)
}
