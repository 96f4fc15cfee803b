package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/log"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/testenv"
)

func init() {
	// containerd's apply warns about every xattr it skips; hostile
	// layers are full of them.
	log.SetLevel("error")
}

// The tests in this file apply hostile layers into a root that sits in a
// parent "jail" holding decoys (a secret file, a directory with a file in
// it, a sibling whose name starts with the root's). Whatever a layer
// does, nothing in the jail outside the root, and nothing on the host,
// may change.

// tarEntry is one entry of a test tar: a header and its content.
type tarEntry struct {
	hdr  tar.Header
	body string
}

func file(name, body string) tarEntry {
	return tarEntry{tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644}, body}
}

func dir(name string) tarEntry {
	return tarEntry{tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755}, ""}
}

func symlink(name, target string) tarEntry {
	return tarEntry{tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}, ""}
}

func hardlink(name, target string) tarEntry {
	return tarEntry{tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: target, Mode: 0o644}, ""}
}

func device(name string, typ byte, major, minor int64) tarEntry {
	return tarEntry{tar.Header{Name: name, Typeflag: typ, Mode: 0o600, Devmajor: major, Devminor: minor}, ""}
}

// tarOf writes entries as a PAX tar; a header's Size is len(body) unless
// set.
func tarOf(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if h.Size == 0 {
			h.Size = int64(len(e.body))
		}
		if h.Format == tar.FormatUnknown {
			h.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("writing header %q: %v", h.Name, err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// jail is a parent directory with decoys and the root layers go into.
type jail struct {
	parent, root string
	canary       string // an absolute host path no layer may create
}

// newJail makes a jail under dir.
func newJail(t testing.TB, dir string) jail {
	t.Helper()
	j := jail{parent: dir, root: filepath.Join(dir, "root"), canary: "/kiln-escape-" + randomHex(t)}
	for _, d := range []string{"root", "victim", "root-sibling"} {
		must(t, os.Mkdir(filepath.Join(dir, d), 0o755))
	}
	must(t, os.WriteFile(filepath.Join(dir, "secret"), []byte("secret\n"), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "victim", "keep"), []byte("keep\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "root-sibling", "keep"), []byte("keep\n"), 0o644))
	t.Cleanup(func() { os.RemoveAll(j.canary) })
	return j
}

func randomHex(t testing.TB) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// expand replaces @JAIL@ and @CANARY@ in names and link targets.
func (j jail) expand(entries []tarEntry) []tarEntry {
	r := strings.NewReplacer("@JAIL@", j.parent, "@CANARY@", j.canary)
	out := make([]tarEntry, len(entries))
	for i, e := range entries {
		e.hdr.Name, e.hdr.Linkname = r.Replace(e.hdr.Name), r.Replace(e.hdr.Linkname)
		out[i] = e
	}
	return out
}

// snapshot describes everything under the jail except the root: type,
// mode, owner, size, link count, mtime, link target, content digest and
// xattrs. The jail directory itself is included.
func (j jail) snapshot(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(j.parent, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == j.root {
			return filepath.SkipDir
		}
		out[p] = describe(p)
		return nil
	})
	must(t, err)
	return out
}

func describe(p string) string {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return err.Error()
	}
	s := fmt.Sprintf("mode=%o uid=%d gid=%d size=%d nlink=%d mtime=%d.%d", st.Mode, st.Uid, st.Gid, st.Size, st.Nlink, st.Mtim.Sec, st.Mtim.Nsec)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		l, _ := os.Readlink(p)
		s += " -> " + l
	case unix.S_IFREG:
		b, _ := os.ReadFile(p)
		s += fmt.Sprintf(" sha256=%x", sha256.Sum256(b))
	}
	buf := make([]byte, 4096)
	if n, err := unix.Llistxattr(p, buf); err == nil && n > 0 {
		names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
		sort.Strings(names)
		s += " xattrs=" + strings.Join(names, ",")
	}
	return s
}

// checkJail fails the test if anything outside the root changed.
func (j jail) checkJail(t testing.TB, before map[string]string) {
	t.Helper()
	if diff := cmp.Diff(before, j.snapshot(t)); diff != "" {
		t.Errorf("the jail outside the root changed (-before +after):\n%s", diff)
	}
	if _, err := os.Lstat(j.canary); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s exists on the host after the apply (%v)", j.canary, err)
	}
}

// lstat returns what is at rel under root, or "" when nothing is.
func lstat(t testing.TB, root, rel string) string {
	t.Helper()
	fi, err := os.Lstat(filepath.Join(root, rel))
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	must(t, err)
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		l, _ := os.Readlink(filepath.Join(root, rel))
		return "symlink " + l
	case fi.IsDir():
		return "dir"
	case fi.Mode().IsRegular():
		b, _ := os.ReadFile(filepath.Join(root, rel))
		return "file " + string(b)
	case fi.Mode()&fs.ModeCharDevice != 0:
		st := fi.Sys().(*syscall.Stat_t)
		return fmt.Sprintf("char %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	case fi.Mode()&fs.ModeDevice != 0:
		st := fi.Sys().(*syscall.Stat_t)
		return fmt.Sprintf("block %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	case fi.Mode()&fs.ModeNamedPipe != 0:
		return "fifo"
	}
	return fi.Mode().String()
}

// errAny stands for "some error" in a table of wanted errors.
var errAny = errors.New("any error")

// checkErr checks err against want: nil, errAny or an errors.Is target.
func checkErr(t testing.TB, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Errorf("Apply: %v, want no error", err)
	case want != nil && err == nil:
		t.Errorf("Apply succeeded, want an error (%v)", want)
	case want != nil && want != errAny && !errors.Is(err, want):
		t.Errorf("Apply: %v, want %v", err, want)
	}
}

type applyMode int

const (
	plainMode applyMode = iota
	overlayMode
)

func (m applyMode) String() string { return [...]string{"plain", "overlay"}[m] }

func (m applyMode) opts() ApplyOptions { return ApplyOptions{Overlay: m == overlayMode} }

func requireRoot(t testing.TB) {
	t.Helper()
	testenv.NeedRoot(t, "devices, overlay whiteouts, tmpfs")
}

// hostileCase is a layer that tries to escape its root, and what must
// be true after it is applied.
type hostileCase struct {
	name    string
	entries []tarEntry
	wantErr error
	// overlayErr replaces wantErr in overlay mode when set.
	overlayErr error
	// want maps paths under the root to what must be there
	// afterwards ("" for nothing), in plain mode.
	want map[string]string
	// overlayWant replaces want in overlay mode when set.
	overlayWant map[string]string
	root        bool // needs root
}

// hostileCases are tried in both apply modes, and seed FuzzApply.
var hostileCases = []hostileCase{
	{
		name:    "dot-dot name",
		entries: []tarEntry{file("../secret", "pwned")},
		want:    map[string]string{"secret": "file pwned"},
	},
	{
		name:    "dot-dot deep inside a name",
		entries: []tarEntry{dir("a/"), file("a/../../../../victim/keep", "pwned")},
		want:    map[string]string{"victim/keep": "file pwned", "a": "dir"},
	},
	{
		name:    "absolute name",
		entries: []tarEntry{file("/@CANARY@", "pwned"), file("@JAIL@/secret", "pwned")},
		want:    map[string]string{"@CANARY@": "file pwned"},
	},
	{
		name:    "absolute symlink to the jail, then a file through it",
		entries: []tarEntry{symlink("esc", "@JAIL@"), file("esc/secret", "pwned")},
		want:    map[string]string{"esc": "symlink @JAIL@"},
	},
	{
		name:    "relative symlink out, then a file through it",
		entries: []tarEntry{symlink("esc", "../../../.."), file("esc/secret", "pwned"), file("esc/victim/keep", "pwned")},
		want:    map[string]string{"esc": "symlink ../../../..", "secret": "file pwned", "victim/keep": "file pwned"},
	},
	{
		name:    "symlink to the host root, then a file through it",
		entries: []tarEntry{symlink("esc", "/"), file("esc@CANARY@", "pwned")},
		want:    map[string]string{"esc": "symlink /"},
	},
	{
		name:    "chain of symlinks out",
		entries: []tarEntry{symlink("a", "b"), symlink("b", "c/../.."), dir("c/"), file("a/secret", "pwned")},
		want:    map[string]string{"secret": "file pwned"},
	},
	{
		name:    "directory through a symlink out",
		entries: []tarEntry{symlink("esc", ".."), dir("esc/victim/"), file("esc/victim/new", "pwned")},
		want:    map[string]string{"victim/new": "file pwned"},
	},
	{
		name:    "symlink to a file outside, then the same name as a file",
		entries: []tarEntry{symlink("s", "../secret"), file("s", "pwned")},
		want:    map[string]string{"s": "file pwned"},
	},
	{
		name:    "symlink to a directory outside, then the same name as a directory",
		entries: []tarEntry{symlink("s", "@JAIL@/victim"), dir("s/"), file("s/keep", "pwned")},
		want:    map[string]string{"s": "dir", "s/keep": "file pwned"},
	},
	{
		name:    "symlink loop",
		entries: []tarEntry{symlink("a", "b"), symlink("b", "a"), file("a/x", "pwned")},
		wantErr: errAny,
	},
	{
		name:    "hard link to a file outside by dot-dot",
		entries: []tarEntry{hardlink("hl", "../secret")},
		wantErr: errAny,
		want:    map[string]string{"hl": ""},
	},
	{
		name:    "hard link to a file outside by absolute name",
		entries: []tarEntry{hardlink("hl", "@JAIL@/secret")},
		wantErr: errAny,
		want:    map[string]string{"hl": ""},
	},
	{
		name:    "hard link to a file outside through a symlink",
		entries: []tarEntry{symlink("esc", "@JAIL@"), hardlink("hl", "esc/secret")},
		wantErr: errAny,
		want:    map[string]string{"hl": ""},
	},
	{
		name:    "hard link to the parent directory",
		entries: []tarEntry{hardlink("hl", "..")},
		wantErr: errAny,
	},
	{
		name:    "hard link to a symlink out, then content written to it",
		entries: []tarEntry{symlink("s", "../secret"), hardlink("hl", "s"), file("hl", "pwned")},
		want:    map[string]string{"s": "symlink ../secret", "hl": "file pwned"},
	},
	{
		name:    "hard link to a symlink out, then a file through it",
		entries: []tarEntry{symlink("s", "@JAIL@"), hardlink("hl", "s"), file("hl/secret", "pwned")},
		want:    map[string]string{"hl": "symlink @JAIL@"},
	},
	{
		name:    "whiteout through a symlink out",
		entries: []tarEntry{symlink("esc", "@JAIL@/victim"), file("esc/.wh.keep", "")},
		want:    map[string]string{"esc": "symlink @JAIL@/victim"},
	},
	{
		name:    "whiteout of a symlink out removes the link only",
		entries: []tarEntry{symlink("esc", "@JAIL@/victim"), file(".wh.esc", "")},
		want:    map[string]string{"esc": ""},
		// overlay makes a whiteout device, which fails on the
		// existing name (an overlay layer starts empty)
		overlayErr:  errAny,
		overlayWant: map[string]string{"esc": "symlink @JAIL@/victim"},
	},
	{
		name:    "opaque directory through a symlink out",
		entries: []tarEntry{symlink("esc", "@JAIL@/victim"), file("esc/.wh..wh..opq", "")},
	},
	{
		name:    "opaque directory through a symlink to the jail",
		entries: []tarEntry{symlink("esc", ".."), file("esc/.wh..wh..opq", "")},
	},
	{
		name:    "whiteout of the parent directory",
		entries: []tarEntry{dir("a/"), file("a/.wh..", "")},
		wantErr: errAny,
	},
	{
		name:    "whiteout of dot-dot at the top",
		entries: []tarEntry{file(".wh..", "")},
		wantErr: errAny,
	},
	{
		name:    "whiteout with an absolute name",
		entries: []tarEntry{file("@JAIL@/.wh.secret", ""), file("/.wh.victim", "")},
	},
	{
		name:    "character and block devices land inside",
		entries: []tarEntry{dir("dev/"), device("dev/sda", tar.TypeBlock, 8, 0), device("dev/mem", tar.TypeChar, 1, 1), device("dev/fifo", tar.TypeFifo, 0, 0)},
		want:    map[string]string{"dev/sda": "block 8:0", "dev/mem": "char 1:1", "dev/fifo": "fifo"},
		root:    true,
	},
	{
		name:    "device node through a symlink out",
		entries: []tarEntry{symlink("esc", "@JAIL@"), device("esc/sda", tar.TypeBlock, 8, 0), device("esc/secret", tar.TypeChar, 1, 3)},
		root:    true,
	},
	{
		name:    "device number beyond 32 bits",
		entries: []tarEntry{{tar.Header{Name: "big", Typeflag: tar.TypeChar, Mode: 0o600, Devmajor: 1 << 33, Devminor: 1, Format: tar.FormatGNU}, ""}},
		wantErr: errAny,
		want:    map[string]string{"big": ""},
		root:    true,
	},
	{
		name:    "the root itself as a directory entry",
		entries: []tarEntry{{tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o777 | int64(fs.ModeSticky)}, ""}, {tar.Header{Name: "/", Typeflag: tar.TypeDir, Mode: 0o700}, ""}},
	},
	{
		name:    "symlink to the jail, then it as a directory with new metadata",
		entries: []tarEntry{symlink("esc", ".."), {tar.Header{Name: "esc/", Typeflag: tar.TypeDir, Mode: 0o777, Uid: 1234}, ""}},
		want:    map[string]string{"esc": "dir"},
	},
	{
		name:    "file under a file",
		entries: []tarEntry{file("f", "x"), file("f/g", "pwned")},
		wantErr: errAny,
	},
	{
		name:    "trusted xattrs are not set",
		entries: []tarEntry{{tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755, PAXRecords: map[string]string{"SCHILY.xattr.trusted.overlay.redirect": "/victim", "SCHILY.xattr.trusted.overlay.opaque": "y"}}, ""}},
		want:    map[string]string{"d": "dir"},
		root:    true,
	},
	{
		name:    "xattr set through a symlink out",
		entries: []tarEntry{symlink("esc", "@JAIL@/secret"), {tar.Header{Name: "esc", Typeflag: tar.TypeSymlink, Linkname: "@JAIL@/secret", PAXRecords: map[string]string{"SCHILY.xattr.user.pwned": "1"}}, ""}},
	},
	{
		name:    "name longer than PATH_MAX",
		entries: []tarEntry{file(strings.Repeat("a/", 3000)+"f", "x")},
		wantErr: errAny,
	},
}

func TestApplyHostile(t *testing.T) {
	tests := hostileCases
	for _, tc := range tests {
		for _, mode := range []applyMode{plainMode, overlayMode} {
			t.Run(tc.name+"/"+mode.String(), func(t *testing.T) {
				if tc.root || mode == overlayMode {
					requireRoot(t)
				}
				j := newJail(t, t.TempDir())
				before := j.snapshot(t)
				layer := tarOf(t, j.expand(tc.entries)...)
				_, err := Apply(context.Background(), j.root, bytes.NewReader(layer), mode.opts())
				j.checkJail(t, before)
				t.Logf("Apply: %v", err)
				want, wantErr := tc.want, tc.wantErr
				if mode == overlayMode && tc.overlayWant != nil {
					want = tc.overlayWant
				}
				if mode == overlayMode && tc.overlayErr != nil {
					wantErr = tc.overlayErr
				}
				checkErr(t, err, wantErr)
				if fi, err := os.Stat(j.root); err != nil || fi.Mode() != fs.ModeDir|0o755 {
					t.Errorf("the root is %v (%v), want drwxr-xr-x", fi.Mode(), err)
				}
				r := strings.NewReplacer("@JAIL@", j.parent, "@CANARY@", strings.TrimPrefix(j.canary, "/"))
				for rel, w := range want {
					rel, w = r.Replace(rel), r.Replace(w)
					if got := lstat(t, j.root, rel); got != w {
						t.Errorf("%s in the root is %q, want %q", rel, got, w)
					}
				}
				if tc.name == "trusted xattrs are not set" {
					for _, x := range []string{"trusted.overlay.redirect", "trusted.overlay.opaque"} {
						if _, err := unix.Lgetxattr(filepath.Join(j.root, "d"), x, make([]byte, 64)); err == nil {
							t.Errorf("the layer set %s", x)
						}
					}
				}
			})
		}
	}
}
