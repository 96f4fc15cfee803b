package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testenv"
)

// foreignTar writes a tar the way other tools do: GNU and PAX headers,
// uid/gid names, a hard link, a symlink, a whiteout and extra zero blocks
// after the end marker, none of which kiln's own writer would produce.
func foreignTar(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mt := time.Date(2020, 1, 2, 3, 4, 5, 600, time.UTC)
	add := func(h *tar.Header, body string) {
		t.Helper()
		h.Size = int64(len(body))
		if h.ModTime.IsZero() {
			h.ModTime = mt
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, body); err != nil {
			t.Fatal(err)
		}
	}
	add(&tar.Header{Name: "./etc/", Typeflag: tar.TypeDir, Mode: 0o755, Format: tar.FormatGNU, Uname: "root"}, "")
	add(&tar.Header{Name: "./etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644, Format: tar.FormatUSTAR, Uname: "root", Gname: "root"}, "root:x:0:0::/root:/bin/sh\n")
	add(&tar.Header{Name: "etc/" + strings.Repeat("long", 40), Typeflag: tar.TypeReg, Mode: 0o600, Uid: 1000, Format: tar.FormatPAX,
		PAXRecords: map[string]string{"SCHILY.xattr.user.x": "y"}}, strings.Repeat("data", 1000))
	hl := &tar.Header{Name: "etc/passwd-link", Typeflag: tar.TypeLink, Linkname: "./etc/passwd", Mode: 0o644, Format: tar.FormatGNU}
	if err := tw.WriteHeader(hl); err != nil {
		t.Fatal(err)
	}
	add(&tar.Header{Name: "etc/sym", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd", Format: tar.FormatUSTAR}, "")
	add(&tar.Header{Name: "etc/.wh.gone", Typeflag: tar.TypeReg, Format: tar.FormatPAX}, "")
	add(&tar.Header{Name: "empty", Typeflag: tar.TypeReg, Mode: 0o644, Format: tar.FormatGNU}, "")
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	buf.Write(make([]byte, 10240)) // as GNU tar pads to its record size
	return buf.Bytes()
}

// extract writes the regular files of tarball under root by name, as a
// snapshot holds them.
func extract(t *testing.T, tarball []byte, root string) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(tarball))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			tsMust(t, os.MkdirAll(p, 0o755))
		case tar.TypeReg:
			tsMust(t, os.MkdirAll(filepath.Dir(p), 0o755))
			b, err := io.ReadAll(tr)
			tsMust(t, err)
			tsMust(t, os.WriteFile(p, b, 0o644))
		}
	}
}

func tsMust(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func recordAndRebuild(t *testing.T, tarball []byte, root string) []byte {
	t.Helper()
	var meta bytes.Buffer
	r, rec := RecordTarSplit(bytes.NewReader(tarball), &meta)
	passed, err := io.ReadAll(r)
	tsMust(t, err)
	tsMust(t, rec.Finish())
	if !bytes.Equal(passed, tarball) {
		t.Fatal("the recorder changed the stream")
	}
	var out bytes.Buffer
	tsMust(t, RebuildTar(context.Background(), &meta, root, &out))
	return out.Bytes()
}

func TestTarSplitRebuildsForeignTar(t *testing.T) {
	tarball := foreignTar(t)
	root := t.TempDir()
	extract(t, tarball, root)
	if got := recordAndRebuild(t, tarball, root); !bytes.Equal(got, tarball) {
		t.Fatalf("rebuilt tar differs: %d bytes, want %d", len(got), len(tarball))
	}
}

// TestTarSplitRebuildsGNUTar rebuilds a tar GNU tar wrote of a real tree.
func TestTarSplitRebuildsGNUTar(t *testing.T) {
	testenv.NeedBinary(t, "tar")
	src := t.TempDir()
	tsMust(t, os.MkdirAll(filepath.Join(src, "a/b"), 0o755))
	tsMust(t, os.WriteFile(filepath.Join(src, "a/b/file"), bytes.Repeat([]byte("x"), 70000), 0o640))
	tsMust(t, os.Symlink("b/file", filepath.Join(src, "a/link")))
	tsMust(t, os.Link(filepath.Join(src, "a/b/file"), filepath.Join(src, "a/hard")))
	out, err := exec.Command("tar", "-C", src, "-cf", "-", ".").Output()
	tsMust(t, err)
	root := t.TempDir()
	extract(t, out, root)
	if got := recordAndRebuild(t, out, root); !bytes.Equal(got, out) {
		t.Fatalf("rebuilt tar differs: %d bytes, want %d", len(got), len(out))
	}
}

func TestTarSplitChangedFileIsRefused(t *testing.T) {
	tarball := foreignTar(t)
	root := t.TempDir()
	extract(t, tarball, root)
	var meta bytes.Buffer
	r, rec := RecordTarSplit(bytes.NewReader(tarball), &meta)
	_, _ = io.Copy(io.Discard, r)
	tsMust(t, rec.Finish())
	tsMust(t, os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/root:/bin/bash\n"), 0o644))
	if err := RebuildTar(context.Background(), &meta, root, io.Discard); err == nil {
		t.Fatal("a changed file rebuilt without error")
	}
}

func TestTarSplitNotATarLeavesStreamAlone(t *testing.T) {
	in := bytes.Repeat([]byte("not a tar "), 100000)
	var meta bytes.Buffer
	r, rec := RecordTarSplit(bytes.NewReader(in), &meta)
	got, err := io.ReadAll(r)
	tsMust(t, err)
	if !bytes.Equal(got, in) {
		t.Fatal("stream changed")
	}
	if err := rec.Finish(); err == nil {
		t.Fatal("recording garbage succeeded")
	}
}

func TestTarSplitNamesStayInsideRoot(t *testing.T) {
	outside := t.TempDir()
	tsMust(t, os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o600))
	root := t.TempDir()
	tsMust(t, os.Symlink(outside, filepath.Join(root, "esc")))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tsMust(t, tw.WriteHeader(&tar.Header{Name: "esc/secret", Typeflag: tar.TypeReg, Size: 6, Mode: 0o600}))
	_, _ = tw.Write([]byte("secret"))
	tsMust(t, tw.Close())
	var meta bytes.Buffer
	r, rec := RecordTarSplit(bytes.NewReader(buf.Bytes()), &meta)
	_, _ = io.Copy(io.Discard, r)
	tsMust(t, rec.Finish())
	if err := RebuildTar(context.Background(), &meta, root, io.Discard); err == nil {
		t.Fatal("a file outside the root was read")
	}
}
