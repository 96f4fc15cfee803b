package ocilayout

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/kiln-build/kiln/internal/digestio"
)

// ArchiveSource reads an image from an oci-archive: the archive is unpacked
// into a temporary directory that Close removes.
type ArchiveSource struct {
	*Source
	tmp string
}

// NewArchiveSource unpacks the archive at file into a directory under
// tmpDir ("" for the default) and opens image ref in it.
func NewArchiveSource(file, ref, tmpDir string) (*ArchiveSource, error) {
	tmp, err := os.MkdirTemp(tmpDir, "kiln-oci-archive-")
	if err != nil {
		return nil, err
	}
	if err := Extract(file, tmp); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("opening oci-archive:%s: %w", file, err)
	}
	src, err := NewSource(tmp, ref)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("opening oci-archive:%s: %w", file, err)
	}
	return &ArchiveSource{Source: src, tmp: tmp}, nil
}

// Close removes the unpacked layout.
func (s *ArchiveSource) Close() error { return os.RemoveAll(s.tmp) }

// Extract unpacks a tar archive of plain files and directories into dir,
// refusing any entry that would land outside it.
func Extract(file, dir string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if name == "." {
			continue
		}
		if !fs.ValidPath(name) {
			return fmt.Errorf("archive entry %q escapes the archive", h.Name)
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			if err := digestio.WriteAtomic(target, 0o600, func(w io.Writer) error {
				_, err := io.Copy(w, tr)
				return err
			}); err != nil {
				return err
			}
		default:
			return fmt.Errorf("archive entry %q: unsupported type %q", h.Name, h.Typeflag)
		}
	}
}

// Pack writes the tree at dir as a tar archive to file, atomically.
func Pack(dir, file string) error {
	return digestio.WriteAtomic(file, 0o600, func(w io.Writer) error { return writeTar(dir, w) })
}

func writeTar(dir string, w io.Writer) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		if d.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// ArchiveDestination writes an image into a temporary layout and, on
// Commit, packs it into the archive file (replacing it). Close removes the
// temporary layout.
type ArchiveDestination struct {
	*Destination
	file, tmp string
}

// NewArchiveDestination prepares writing image ref to the archive file,
// using a temporary directory under tmpDir ("" for the default).
func NewArchiveDestination(file, ref, tmpDir string) (*ArchiveDestination, error) {
	tmp, err := os.MkdirTemp(tmpDir, "kiln-oci-archive-")
	if err != nil {
		return nil, err
	}
	dst, err := NewDestination(tmp, ref)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return &ArchiveDestination{Destination: dst, file: file, tmp: tmp}, nil
}

// Commit writes index.json and packs the layout into the archive.
func (d *ArchiveDestination) Commit(ctx context.Context) error {
	if err := d.Destination.Commit(ctx); err != nil {
		return err
	}
	if err := Pack(d.tmp, d.file); err != nil {
		return fmt.Errorf("writing oci-archive:%s: %w", d.file, err)
	}
	return nil
}

// Close removes the temporary layout.
func (d *ArchiveDestination) Close() error { return os.RemoveAll(d.tmp) }
