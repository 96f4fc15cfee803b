package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/transport/transporttest"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Hostile images pulled into a store: images made by hand whose configs
// lie about their layers, whose blobs lie about their digests, or whose
// layers try to escape or to fill the disk. A refused pull exits 125
// with an error naming what was wrong, lists no image, leaves a store
// that `storage check` finds sound, and gives back the space it took.

// hostileLayer is a layer blob and the diff ID its image's config gives.
type hostileLayer struct {
	blob   []byte
	diffID digest.Digest
}

type hostileEntry struct {
	hdr  tar.Header
	body string
}

// gzLayer makes a gzip layer of entries with its true diff ID; tail is
// appended to the tar before compression.
func gzLayer(t *testing.T, tail []byte, entries ...hostileEntry) hostileLayer {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for _, e := range entries {
		h := e.hdr
		if h.Size == 0 {
			h.Size = int64(len(e.body))
		}
		must(t, tw.WriteHeader(&h))
		_, err := tw.Write([]byte(e.body))
		must(t, err)
	}
	must(t, tw.Close())
	tb.Write(tail)
	var zb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&zb, gzip.BestCompression)
	_, err := zw.Write(tb.Bytes())
	must(t, err)
	must(t, zw.Close())
	return hostileLayer{blob: zb.Bytes(), diffID: digest.FromBytes(tb.Bytes())}
}

// sizeClaim is a gzip layer of one file header claiming size bytes, and
// nothing after it.
func sizeClaim(t *testing.T, name string, size int64) hostileLayer {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	must(t, tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size}))
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	_, err := zw.Write(tb.Bytes()) // the header alone: the writer is never closed
	must(t, err)
	must(t, zw.Close())
	return hostileLayer{blob: zb.Bytes(), diffID: digest.FromBytes(tb.Bytes())}
}

// zstdBomb is a zstd layer: a small tar in a raw block, then zeros
// made of RLE blocks (4 bytes for 128 KiB). Its diff ID is the small
// tar's, a lie.
func zstdBomb(t *testing.T, zeros int64) hostileLayer {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	must(t, tw.WriteHeader(&tar.Header{Name: "a", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}))
	tw.Write([]byte("x"))
	must(t, tw.Close())
	blk := func(last bool, typ, size uint32) []byte {
		h := typ<<1 | size<<3
		if last {
			h |= 1
		}
		return []byte{byte(h), byte(h >> 8), byte(h >> 16)}
	}
	b := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 7 << 3} // frame with a 128 KiB window
	b = append(append(b, blk(false, 0, uint32(tb.Len()))...), tb.Bytes()...)
	rle := append(blk(false, 1, 128<<10), 0)
	n := zeros / (128 << 10)
	b = append(b, bytes.Repeat(rle, int(n-1))...)
	b = append(append(b, blk(true, 1, 128<<10)...), 0)
	return hostileLayer{blob: b, diffID: digest.FromBytes(tb.Bytes())}
}

// kilnWithin runs kiln, killing it after d, and returns its stderr, exit
// code and run time.
func (e *env) kilnWithin(d time.Duration, a ...string) (string, int, time.Duration) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, kilnBin, e.args(a...)...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	start := time.Now()
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("running kiln %v: %v", a, err)
	}
	return strings.TrimSpace(errb.String()), code, time.Since(start)
}

// writeOCI writes an OCI layout at dir with one image tagged tag: its
// layers, and a config naming diffIDs.
func writeOCI(t *testing.T, dir, tag string, layers []hostileLayer, diffIDs []digest.Digest) {
	t.Helper()
	blobs := filepath.Join(dir, "blobs", "sha256")
	must(t, os.MkdirAll(blobs, 0o755))
	put := func(mt string, b []byte) ocispec.Descriptor {
		d := digest.FromBytes(b)
		must(t, os.WriteFile(filepath.Join(blobs, d.Encoded()), b, 0o644))
		return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}
	}
	cfg := ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}, RootFS: ocispec.RootFS{Type: "layers", DiffIDs: diffIDs}}
	cb, _ := json.Marshal(cfg)
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: put(ocispec.MediaTypeImageConfig, cb), Layers: []ocispec.Descriptor{}}
	for _, l := range layers {
		m.Layers = append(m.Layers, put(ocispec.MediaTypeImageLayerGzip, l.blob))
	}
	mb, _ := json.Marshal(m)
	md := put(ocispec.MediaTypeImageManifest, mb)
	md.Annotations = map[string]string{ocispec.AnnotationRefName: tag}
	ib, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{md}})
	must(t, os.WriteFile(filepath.Join(dir, "index.json"), ib, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644))
}

func diffIDsOf(layers []hostileLayer) []digest.Digest {
	var out []digest.Digest
	for _, l := range layers {
		out = append(out, l.diffID)
	}
	return out
}

func randomName(t *testing.T, prefix string) string {
	b := make([]byte, 6)
	_, err := rand.Read(b)
	must(t, err)
	return prefix + hex.EncodeToString(b)
}

// storeBytes is the disk space the files under dir take.
func storeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			if fi, err := d.Info(); err == nil {
				n += fi.Sys().(*syscall.Stat_t).Blocks * 512
			}
		}
		return nil
	})
	return n
}

func TestPullHostile(t *testing.T) {
	skopeo := transporttest.NeedBinary(t, "skopeo")
	host := plainRegistry(t)
	file := func(name, body string) hostileEntry {
		return hostileEntry{tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644}, body}
	}
	base := gzLayer(t, nil, file("etc/base", "base"))
	other := gzLayer(t, nil, file("etc/other", "other"))
	tests := []struct {
		name    string
		layers  []hostileLayer
		diffIDs []digest.Digest // nil: the layers' own
		corrupt bool            // flip a byte of the last layer's blob in the layout (pulled from oci:)
		want    string          // in the error
	}{
		{name: "config diff IDs that do not match the layers", layers: []hostileLayer{base, other}, diffIDs: []digest.Digest{base.diffID, base.diffID}, want: base.diffID.Encoded()[:12]},
		{name: "config diff IDs swapped", layers: []hostileLayer{base, other}, diffIDs: []digest.Digest{other.diffID, base.diffID}, want: "diff"},
		{name: "config with more diff IDs than layers", layers: []hostileLayer{base}, diffIDs: []digest.Digest{base.diffID, other.diffID}, want: "diff"},
		{name: "config with fewer diff IDs than layers", layers: []hostileLayer{base, other}, diffIDs: []digest.Digest{base.diffID}, want: "diff"},
		{name: "layer blob that does not match its digest", layers: []hostileLayer{base, other}, corrupt: true, want: "does not match its digest"},
		{name: "layer claiming a 1 TiB file", layers: []hostileLayer{base, sizeClaim(t, "big", 1<<40)}, want: "space"},
		{name: "layer with 1 GiB of zeros after its archive", layers: []hostileLayer{base, gzLayer(t, make([]byte, 1<<30), file("a", "x"))}, want: "after the end of the archive"},
		// 2 MiB of zstd that decompress to 64 GiB: its diff ID is not
		// computed here (minutes); any refusal within the bound will do.
		{name: "zstd layer with 64 GiB of zeros after its archive", layers: []hostileLayer{base, zstdBomb(t, 64<<30)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "overlay")
			e.mustKiln("images")
			before := storeBytes(t, filepath.Join(e.root, "root"))
			layout := filepath.Join(t.TempDir(), "layout")
			diffIDs := tc.diffIDs
			if diffIDs == nil {
				diffIDs = diffIDsOf(tc.layers)
			}
			writeOCI(t, layout, "hostile", tc.layers, diffIDs)
			src := "oci:" + layout + ":hostile"
			if tc.corrupt {
				last := tc.layers[len(tc.layers)-1]
				p := filepath.Join(layout, "blobs", "sha256", digest.FromBytes(last.blob).Encoded())
				b := bytes.Clone(last.blob)
				b[len(b)/2] ^= 0xff
				must(t, os.WriteFile(p, b, 0o644))
			} else {
				ref := host + "/hostile/" + strings.ReplaceAll(strings.ToLower(t.Name()[len("TestPullHostile/"):]), " ", "-") + ":1"
				runPeer(t, skopeo, "copy", "-q", "--preserve-digests", "--dest-tls-verify=false", src, "docker://"+ref)
				src = "docker://" + ref
			}
			errOut, code, elapsed := e.kilnWithin(40*time.Second, "pull", "-q", "--retry", "0", "--tls-verify=false", src)
			t.Logf("pull: exit %d after %v: %s", code, elapsed.Round(time.Millisecond), errOut)
			if elapsed > 30*time.Second {
				t.Errorf("the refusal took %v", elapsed)
			}
			if code != 125 {
				t.Fatalf("pull: exit %d, want 125 (stderr %q)", code, errOut)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("pull: error %q does not say %q", errOut, tc.want)
			}
			if out := e.mustKiln("images", "-q"); out != "" {
				t.Errorf("images after a refused pull: %q", out)
			}
			if out, errOut, code := e.kiln("storage", "check"); code != 0 || !strings.Contains(out, "0 problems") {
				t.Errorf("storage check after a refused pull: exit %d, %q %q", code, out, errOut)
			}
			if after := storeBytes(t, filepath.Join(e.root, "root")); after-before > 64<<10 {
				t.Errorf("the refused pull left %d KiB in the store (%d before, %d after)", (after-before)>>10, before, after)
			}
		})
	}
}

// TestPullEscaping pulls layers that reach out of their root through
// symlinks, .. and whiteouts, and makes a container of them: everything
// lands inside the image and nothing on the host changes. A layer hard
// linking to a host file cannot be applied: the pull or the container
// fails, and the host file is untouched.
func TestPullEscaping(t *testing.T) {
	skopeo := transporttest.NeedBinary(t, "skopeo")
	host := plainRegistry(t)
	e := newEnv(t, "overlay")
	canary := randomName(t, "/tmp/kiln-hostile-canary-")
	victim := t.TempDir()
	must(t, os.WriteFile(filepath.Join(victim, "keep"), []byte("keep"), 0o644))
	entry := func(typ byte, name, link, body string) hostileEntry {
		return hostileEntry{tar.Header{Name: name, Typeflag: typ, Linkname: link, Mode: 0o644}, body}
	}
	push := func(name string, layers ...hostileLayer) string {
		layout := filepath.Join(t.TempDir(), "layout")
		writeOCI(t, layout, name, layers, diffIDsOf(layers))
		ref := host + "/hostile/" + name + ":1"
		runPeer(t, skopeo, "copy", "-q", "--preserve-digests", "--dest-tls-verify=false", "oci:"+layout+":"+name, "docker://"+ref)
		return ref
	}
	hostUnchanged := func() {
		t.Helper()
		for _, p := range []string{canary, canary + "-dotdot"} {
			if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
				os.Remove(p)
				t.Errorf("%s was created on the host", p)
			}
		}
		if b, err := os.ReadFile(filepath.Join(victim, "keep")); err != nil || string(b) != "keep" {
			t.Errorf("%s/keep changed: %q %v", victim, b, err)
		}
		if fi, err := os.Stat(filepath.Join(victim, "keep")); err == nil && fi.Sys().(*syscall.Stat_t).Nlink != 1 {
			t.Errorf("%s/keep gained a hard link", victim)
		}
	}

	escape := push("escape",
		gzLayer(t, nil,
			entry(tar.TypeSymlink, "esc", "/", ""),
			entry(tar.TypeReg, "esc"+canary, "", "pwned"),
			entry(tar.TypeReg, "../../../../../.."+canary+"-dotdot", "", "pwned"),
			entry(tar.TypeSymlink, "v", victim, ""),
		),
		gzLayer(t, nil, entry(tar.TypeReg, "v/.wh.keep", "", ""), entry(tar.TypeReg, "esc"+victim+"/.wh..wh..opq", "", "")),
	)
	e.mustKiln("pull", "-q", "--tls-verify=false", escape)
	c := e.mustKiln("from", escape)
	mp := e.mustKiln("mount", c)
	hostUnchanged()
	if b, err := os.ReadFile(filepath.Join(mp, canary)); err != nil || string(b) != "pwned" {
		t.Errorf("the file written through the symlink is not inside the image: %q %v", b, err)
	}

	link := push("hardlink", gzLayer(t, nil, entry(tar.TypeLink, "hl", "../../../../../.."+victim+"/keep", "")))
	if _, errOut, code := e.kiln("pull", "-q", "--tls-verify=false", link); code == 0 {
		c, errOut, code := e.kiln("from", link)
		if code == 0 {
			_, errOut, code = e.kiln("mount", c)
		}
		if code != 125 {
			t.Errorf("a container of a layer hard linking out of its root: exit %d, want 125 (%s)", code, errOut)
		}
	} else if code != 125 {
		t.Errorf("pull of a layer hard linking out of its root: exit %d, want 125 (%s)", code, errOut)
	}
	hostUnchanged()
	if out, errOut, code := e.kiln("storage", "check"); code != 0 || !strings.Contains(out, "0 problems") {
		t.Errorf("storage check: exit %d, %q %q", code, out, errOut)
	}
}
