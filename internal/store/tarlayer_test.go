package store

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/internal/image"
	_ "github.com/kiln-build/kiln/internal/store/driver/overlay"
)

// tarOf is the tar GNU tar writes of the tree fill makes.
func tarOf(t *testing.T, fill func(dir string)) []byte {
	t.Helper()
	dir := t.TempDir()
	fill(dir)
	out, err := exec.Command("tar", "--format=pax", "--sort=name", "-C", dir, "-cf", "-", ".").Output()
	if err != nil {
		t.Fatalf("tar: %v", err)
	}
	return out
}

func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, p)
		must(t, os.MkdirAll(filepath.Dir(full), 0o755))
		must(t, os.WriteFile(full, []byte(content), 0o644))
	}
}

// viewEntry is what a test compares of a path of a view.
type viewEntry struct {
	Mode     fs.FileMode
	UID, GID int
	Size     int64
	MTime    int64
	Link     string
	Content  string
	Group    string // the first path of the same file
}

// viewTree lists every path of v with its entry.
func viewTree(t *testing.T, v *PathView) map[string]viewEntry {
	t.Helper()
	out := map[string]viewEntry{}
	first := map[[2]uint64]string{}
	var walk func(dir string)
	walk = func(dir string) {
		names, err := v.ReadDir(dir)
		must(t, err)
		for _, n := range names {
			p := path.Join(dir, n)
			e, err := v.Lstat(p)
			must(t, err)
			ve := viewEntry{Mode: e.Mode, UID: e.UID, GID: e.GID, Size: e.Size, MTime: e.ModTime.Unix(), Link: e.Linkname}
			if e.Mode.IsRegular() {
				rc, err := v.Open(context.Background(), p)
				must(t, err)
				b, err := io.ReadAll(rc)
				rc.Close()
				must(t, err)
				ve.Content = string(b)
				id := [2]uint64{e.Dev, e.Ino}
				if f, ok := first[id]; ok {
					ve.Group = f
				} else {
					first[id], ve.Group = p, p
				}
			}
			if e.IsDir() {
				ve.Size = 0
			}
			out[p] = ve
			if e.IsDir() {
				walk(p)
			}
		}
	}
	walk("/")
	return out
}

// TestTarLayerWithoutFiles: a layer stored from a tar stream exists as
// its blob alone; a view of its chain sees what a mounted container
// would (whiteouts, opaque directories, hard links, symlinks, owners)
// without making a file; made files see the same, the blob goes and the
// tar stays the same bytes; and the layer can be placed on another
// parent.
func TestTarLayerWithoutFiles(t *testing.T) {
	for _, drv := range []string{"overlay", "vfs"} {
		t.Run(drv, func(t *testing.T) {
			ctx := context.Background()
			s := openDriver(t, t.TempDir(), drv)
			tar1 := tarOf(t, func(dir string) {
				writeTree(t, dir, map[string]string{"etc/passwd": "root:x:0:0::/root:/bin/sh\n", "data/a": "A", "data/sub/c": "C",
					"gone/x": "x", "keep/y": "y", "opq/old": "old", "usr/bin/tool": "#!/bin/sh\n"})
				must(t, os.Link(filepath.Join(dir, "data/a"), filepath.Join(dir, "data/b")))
				must(t, os.Symlink("tool", filepath.Join(dir, "usr/bin/link")))
				must(t, os.Chown(filepath.Join(dir, "data/a"), 1000, 1001))
				must(t, os.Chmod(filepath.Join(dir, "usr/bin/tool"), fs.ModeSetuid|0o755))
				must(t, os.Chmod(filepath.Join(dir, "etc"), 0o700))
			})
			tar2 := tarOf(t, func(dir string) {
				writeTree(t, dir, map[string]string{".wh.gone": "", "opq/.wh..wh..opq": "", "opq/new": "new", "data/sub/d": "D", "keep/.wh.y": ""})
			})
			l1, err := s.AddTarLayer(ctx, "", bytes.NewReader(tar1))
			must(t, err)
			l2, err := s.AddTarLayer(ctx, l1.ID, bytes.NewReader(tar2))
			must(t, err)
			for _, l := range []Layer{l1, l2} {
				if l.Files || l.Blob != nil || s.driver.Exists(l.ID) {
					t.Errorf("layer %s: files %t, blob %v, snapshot %t; want a blob alone, named by no blob it came as", l.ID, l.Files, l.Blob, s.driver.Exists(l.ID))
				}
			}
			if got, want := l2.DiffID, sha256Digest(tar2); got != want {
				t.Errorf("diff ID %s, want %s", got, want)
			}
			descs, err := s.LayerDescriptors(ctx, l2.ID, image.FormatOCI)
			must(t, err)
			if descs[1].Digest != l2.DiffID || descs[1].MediaType != image.MediaTypeOCILayer {
				t.Errorf("descriptor %+v: want the layer's tar", descs[1])
			}

			v, err := s.OpenPathView(ctx, l2.ID)
			must(t, err)
			before := viewTree(t, v)
			v.Close()
			want := map[string]string{"/etc/passwd": "root:x:0:0::/root:/bin/sh\n", "/data/a": "A", "/data/b": "A", "/data/sub/c": "C",
				"/data/sub/d": "D", "/opq/new": "new", "/usr/bin/tool": "#!/bin/sh\n"}
			for p, c := range want {
				if before[p].Content != c {
					t.Errorf("%s: %q, want %q", p, before[p].Content, c)
				}
			}
			for _, p := range []string{"/gone", "/gone/x", "/keep/y", "/opq/old"} {
				if _, ok := before[p]; ok {
					t.Errorf("%s is visible, want it hidden", p)
				}
			}
			if before["/data/b"].Group != "/data/a" || before["/data/a"].UID != 1000 || before["/data/a"].GID != 1001 {
				t.Errorf("/data/b = %+v, /data/a = %+v: want one file owned by 1000:1001", before["/data/b"], before["/data/a"])
			}
			if e := before["/usr/bin/link"]; e.Link != "tool" || e.Mode&fs.ModeSymlink == 0 {
				t.Errorf("/usr/bin/link = %+v", e)
			}
			if m := before["/usr/bin/tool"].Mode; m != 0o755|fs.ModeSetuid {
				t.Errorf("/usr/bin/tool mode %v", m)
			}
			if m := before["/etc"].Mode; m != fs.ModeDir|0o700 {
				t.Errorf("/etc mode %v", m)
			}
			if n := countFiles(t, s.driver.Home()); n != 0 {
				t.Errorf("%d files under the driver's home, want none", n)
			}

			// Files made: the view sees the same; the blobs go, the tars stay.
			must(t, s.EnsureFiles(ctx, l2.ID))
			v, err = s.OpenPathView(ctx, l2.ID)
			must(t, err)
			after := viewTree(t, v)
			v.Close()
			if drv == "vfs" {
				// A vfs snapshot starts as a copy of its parent's tree,
				// whose directories do not keep their times.
				for _, tree := range []map[string]viewEntry{before, after} {
					for p, e := range tree {
						if e.Mode.IsDir() {
							e.MTime = 0
							tree[p] = e
						}
					}
				}
			}
			if diff := cmp.Diff(before, after); diff != "" {
				t.Errorf("view after making files (-blob +files):\n%s", diff)
			}
			for _, c := range []struct {
				l   Layer
				tar []byte
			}{{l1, tar1}, {l2, tar2}} {
				if s.HasBlob(c.l.DiffID) {
					t.Errorf("layer %s has files and still its uncompressed blob", c.l.ID)
				}
				l, err := s.Layer(ctx, c.l.ID)
				must(t, err)
				if got := layerTar(t, s, l); !bytes.Equal(got, c.tar) {
					t.Errorf("layer %s: tar rebuilt from files differs from the one stored", l.ID)
				}
			}

			// On another parent: a new chain, the same tar, no files.
			base, err := s.AddTarLayer(ctx, "", bytes.NewReader(tarOf(t, func(dir string) { writeTree(t, dir, map[string]string{"other": "o"}) })))
			must(t, err)
			l2files, err := s.Layer(ctx, l2.ID)
			must(t, err)
			moved, err := s.RebaseLayer(ctx, base.ID, l2files)
			must(t, err)
			if moved.ID == l2.ID || moved.DiffID != l2.DiffID || moved.Files || moved.Parent != base.ID {
				t.Errorf("rebased layer %+v", moved)
			}
			if got := layerTar(t, s, moved); !bytes.Equal(got, tar2) {
				t.Errorf("rebased layer's tar differs")
			}
			must(t, s.Release(ctx, l1.ID, l2.ID, base.ID, moved.ID))
		})
	}
}

// TestPathViewOfCompressedLayer: a pulled layer kept compressed is seen
// through an index of its tar; reading a file makes its files.
func TestPathViewOfCompressedLayer(t *testing.T) {
	ctx := context.Background()
	s := openDriver(t, t.TempDir(), "overlay")
	tarball := gnuTar(t)
	p, err := pullLayer(t, s, "localhost/gnu:latest", tarball, true, sha256Digest(tarball))
	must(t, err)
	v, err := s.OpenPathView(ctx, p.img.TopLayer)
	must(t, err)
	defer v.Close()
	e, err := v.Lstat("/usr/share/big")
	must(t, err)
	if e.Linkname != "doc/big" {
		t.Errorf("/usr/share/big -> %q", e.Linkname)
	}
	l, err := s.Layer(ctx, p.img.TopLayer)
	must(t, err)
	if l.Files {
		t.Fatal("looking at the layer made its files")
	}
	rc, err := v.Open(ctx, "/usr/share/doc/big-link")
	must(t, err)
	b, err := io.ReadAll(rc)
	rc.Close()
	must(t, err)
	if !bytes.Equal(b, bytes.Repeat([]byte("kiln "), 20000)) {
		t.Errorf("content of /usr/share/doc/big-link differs")
	}
	if l, err = s.Layer(ctx, p.img.TopLayer); err != nil || !l.Files {
		t.Errorf("reading a file of a compressed layer: files %t, %v; want them made", l.Files, err)
	}
}

// countFiles counts the entries below dir, its own bookkeeping (the
// overlay driver's short-name links, its probe marker and empty
// directory) aside.
func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch filepath.Base(p) {
		case "l", "empty":
			if filepath.Dir(p) == dir {
				return filepath.SkipDir
			}
		case ".probe-ok":
			return nil
		}
		if p != dir {
			n++
		}
		return nil
	})
	must(t, err)
	return n
}
