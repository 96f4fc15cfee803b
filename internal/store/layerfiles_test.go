package store

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/internal/image"
	_ "github.com/kiln-build/kiln/internal/store/driver/vfs"

	"github.com/kiln-build/kiln/internal/testenv"
)

// gnuTar is a layer tar GNU tar wrote of a small tree: its headers,
// padding and record size are GNU tar's, not kiln's, so no tar kiln
// generates from the same files can match it.
func gnuTar(t *testing.T) []byte {
	t.Helper()
	src := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(src, "usr/share/doc"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "usr/share/doc/big"), bytes.Repeat([]byte("kiln "), 20000), 0o644))
	must(t, os.Link(filepath.Join(src, "usr/share/doc/big"), filepath.Join(src, "usr/share/doc/big-link")))
	must(t, os.Symlink("doc/big", filepath.Join(src, "usr/share/big")))
	must(t, os.Chown(filepath.Join(src, "usr/share/doc/big"), 1000, 1000))
	out, err := exec.Command("tar", "--format=gnu", "-C", src, "-cf", "-", ".").Output()
	if err != nil {
		t.Fatalf("tar: %v", err)
	}
	return out
}

type pulled struct {
	img      Image
	blob     ocispec.Descriptor
	blobData []byte
}

// pullLayer stores an image of one layer the way a pull does, the layer
// gzip-compressed (or as it is) and the config naming diffID.
func pullLayer(t *testing.T, s *Store, name string, layerTar []byte, compress bool, diffID digest.Digest) (pulled, error) {
	t.Helper()
	ctx := context.Background()
	data, mt := layerTar, image.MediaTypeOCILayer
	if compress {
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(layerTar)
		zw.Close()
		data, mt = gz.Bytes(), image.MediaTypeOCILayerGz
	}
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + string(diffID) + `"]}}`)
	layerDesc := ocispec.Descriptor{MediaType: mt, Digest: sha256Digest(data), Size: int64(len(data))}
	cfgDesc := image.FromBytes(ocispec.MediaTypeImageConfig, cfg)
	manifest, err := image.NewManifest(image.FormatOCI, cfgDesc, []ocispec.Descriptor{layerDesc}, nil)
	must(t, err)
	d := s.NewImageDestination([]string{name})
	defer d.Close()
	must(t, d.PutBlob(ctx, layerDesc, bytes.NewReader(data)))
	must(t, d.PutBlob(ctx, cfgDesc, bytes.NewReader(cfg)))
	must(t, d.PutManifest(ctx, manifest, image.MediaTypeOCIManifest, nil))
	if err := d.Commit(ctx); err != nil {
		return pulled{}, err
	}
	return pulled{img: d.Image(), blob: layerDesc, blobData: data}, nil
}

func openDriver(t *testing.T, root, drv string) *Store {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.NeedRoot(t, "a store mounts and owns files")
	}
	s, err := Open(context.Background(), Options{Root: filepath.Join(root, "root"), RunRoot: filepath.Join(root, "run"), Driver: drv})
	must(t, err)
	t.Cleanup(func() {
		UnmountUnder(s.root, "")
		s.Close()
	})
	return s
}

func layerTar(t *testing.T, s *Store, l Layer) []byte {
	t.Helper()
	var buf bytes.Buffer
	must(t, s.LayerTar(context.Background(), l, &buf))
	return buf.Bytes()
}

// TestPulledLayerKeepsItsIdentity follows a layer another tool made
// from a pull to a push of an image built on it: it is stored as its
// blob without files, unpacked once when a container is mounted,
// inherited by a commit under its original blob, and its tar comes out
// byte for byte the tar it was, with and without the blob.
func TestPulledLayerKeepsItsIdentity(t *testing.T) {
	for _, drv := range []string{"overlay", "vfs"} {
		t.Run(drv, func(t *testing.T) {
			ctx := context.Background()
			s := openDriver(t, t.TempDir(), drv)
			tarball := gnuTar(t)
			p, err := pullLayer(t, s, "localhost/base:latest", tarball, true, sha256Digest(tarball))
			must(t, err)
			base, err := s.Layer(ctx, p.img.TopLayer)
			must(t, err)
			if base.Files || base.Blob == nil || base.Blob.Digest != p.blob.Digest {
				t.Fatalf("the pulled layer is %+v; want no files yet and blob %s", base, p.blob.Digest)
			}
			src := s.NewImageSource(ctx, p.img)
			rc, _, err := src.Blob(ctx, p.blob.Digest)
			must(t, err)
			got, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(got, p.blobData) {
				t.Fatal("the image source does not send the blob the layer came as")
			}

			c, err := s.CreateContainer(ctx, "work", p.img.ID, p.img.TopLayer, nil)
			must(t, err)
			mp, err := s.Mount(ctx, c.ID)
			must(t, err)
			if b, err := os.ReadFile(filepath.Join(mp, "usr/share/doc/big")); err != nil || len(b) != 100000 {
				t.Fatalf("a file of the pulled layer in the mount: %d bytes, %v", len(b), err)
			}
			must(t, os.WriteFile(filepath.Join(mp, "added"), []byte("by the container"), 0o644))
			must(t, s.Unmount(ctx, c.ID, true))
			if base, err = s.Layer(ctx, p.img.TopLayer); err != nil || !base.Files {
				t.Fatalf("the layer after a mount: %+v, %v; want files", base, err)
			}
			top, err := s.CommitLayer(ctx, c.ID, CommitOptions{})
			must(t, err)

			for _, f := range []image.Format{image.FormatOCI, image.FormatDocker} {
				descs, err := s.LayerDescriptors(ctx, top.ID, f)
				must(t, err)
				want := []ocispec.Descriptor{
					{MediaType: f.LayerMediaType("gzip"), Digest: p.blob.Digest, Size: p.blob.Size},
					{MediaType: f.LayerMediaType(""), Digest: top.DiffID, Size: top.Size},
				}
				if diff := cmpDescs(descs, want); diff != "" {
					t.Errorf("%s descriptors of the committed chain: %s", f, diff)
				}
			}
			if got := layerTar(t, s, base); !bytes.Equal(got, tarball) {
				t.Fatalf("the inherited layer's tar is %d bytes unlike the original %d", len(got), len(tarball))
			}
			// Without its blob, the files and the tar-split record rebuild it.
			must(t, os.Remove(s.blobPath(p.blob.Digest)))
			if got := layerTar(t, s, base); !bytes.Equal(got, tarball) {
				t.Fatal("the tar rebuilt from the files is not the original")
			}
			descs, err := s.LayerDescriptors(ctx, top.ID, image.FormatOCI)
			must(t, err)
			if descs[0].Digest != base.DiffID {
				t.Errorf("with its blob gone the layer is named %s, want its tar %s", descs[0].Digest, base.DiffID)
			}
			// The pulled image's own manifest now names a blob that is
			// gone: the source names the tar instead.
			raw, _, err := src.Manifest(ctx, nil)
			must(t, err)
			m, err := image.ParseManifest(raw)
			must(t, err)
			if m.Layers[0].Digest != base.DiffID {
				t.Errorf("the manifest served names %s, want %s", m.Layers[0].Digest, base.DiffID)
			}
		})
	}
}

func cmpDescs(got, want []ocispec.Descriptor) string {
	if len(got) != len(want) {
		return "lengths differ"
	}
	for i := range got {
		if got[i].MediaType != want[i].MediaType || got[i].Digest != want[i].Digest || got[i].Size != want[i].Size {
			return "got " + string(got[i].Digest) + " " + got[i].MediaType + ", want " + string(want[i].Digest) + " " + want[i].MediaType
		}
	}
	return ""
}

// TestUncompressedPulledLayer: a layer pulled as a plain tar is kept as
// that blob until its files are made; then the files and the record
// stand for it and the blob is given back.
func TestUncompressedPulledLayer(t *testing.T) {
	ctx := context.Background()
	s := openDriver(t, t.TempDir(), "overlay")
	tarball := gnuTar(t)
	p, err := pullLayer(t, s, "localhost/plain:latest", tarball, false, sha256Digest(tarball))
	must(t, err)
	must(t, s.EnsureFiles(ctx, p.img.TopLayer))
	if s.HasBlob(sha256Digest(tarball)) {
		t.Error("the uncompressed blob is still stored beside the files")
	}
	l, err := s.Layer(ctx, p.img.TopLayer)
	must(t, err)
	if got := layerTar(t, s, l); !bytes.Equal(got, tarball) {
		t.Fatal("the rebuilt tar is not the one pulled")
	}
	rc, _, err := s.NewImageSource(ctx, p.img).Blob(ctx, sha256Digest(tarball))
	must(t, err)
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, tarball) {
		t.Fatalf("the image source sends %d bytes, %v; want the pulled tar", len(got), err)
	}
}

// TestCompressLayerKeepsTheBlob: a layer kiln made is compressed once;
// the next push gets the same blob.
func TestCompressLayerKeepsTheBlob(t *testing.T) {
	ctx := context.Background()
	s := openDriver(t, t.TempDir(), "overlay")
	tarball := oneFileTar(t, "etc/made-here", "by kiln")
	l, err := s.ApplyLayer(ctx, "", sha256Digest(tarball), bytes.NewReader(tarball))
	must(t, err)
	img, err := s.CreateImage(ctx, NewImage{TopLayer: l.ID, Config: []byte(`{"rootfs":{"type":"layers","diff_ids":["` + string(l.DiffID) + `"]}}`), Manifest: []byte(`{}`), MediaType: image.MediaTypeOCIManifest})
	must(t, err)
	src := s.NewImageSource(ctx, img)
	desc := ocispec.Descriptor{MediaType: image.MediaTypeOCILayer, Digest: l.DiffID, Size: l.Size}
	for _, c := range []string{"gzip", "zstd"} {
		d1, n1, err := src.CompressLayer(ctx, desc, c, 0, false)
		must(t, err)
		d2, n2, err := src.CompressLayer(ctx, desc, c, 0, false)
		must(t, err)
		if d1 != d2 || n1 != n2 || !s.HasBlob(d1) {
			t.Errorf("%s: compressed twice to %s and %s (stored: %v)", c, d1, d2, s.HasBlob(d1))
		}
	}
}

// TestRefusedPullLeavesNothing: a config whose diff ID does not match
// its layer is refused, and every byte the pull wrote is given back.
func TestRefusedPullLeavesNothing(t *testing.T) {
	ctx := context.Background()
	s := openDriver(t, t.TempDir(), "overlay")
	tarball := gnuTar(t)
	_, err := pullLayer(t, s, "localhost/liar:latest", tarball, true, digest.FromString("not this layer"))
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("a pull whose config lies = %v, want ErrDigestMismatch", err)
	}
	blobs, err := s.blobFiles()
	must(t, err)
	if len(blobs) != 0 {
		t.Errorf("the refused pull left %d blobs", len(blobs))
	}
	var n int
	must(t, s.db.sql.QueryRowContext(ctx, `SELECT count(*) FROM layers`).Scan(&n))
	if n != 0 {
		t.Errorf("the refused pull left %d layers", n)
	}
}
