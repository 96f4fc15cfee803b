package backup_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/store/backup"
	_ "github.com/kiln-build/kiln/internal/store/driver/overlay"
	_ "github.com/kiln-build/kiln/internal/store/driver/vfs"
	"github.com/kiln-build/kiln/internal/testbase"
	"github.com/kiln-build/kiln/internal/testenv"
	"github.com/kiln-build/kiln/internal/transport"
	"github.com/kiln-build/kiln/internal/transport/ocilayout"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testbase.Cleanup()
	os.Exit(code)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// open opens (making it) the store in dir with driver; opts are storage
// options such as lock_timeout.
func open(t *testing.T, dir, driver string, opts map[string]string) *store.Store {
	t.Helper()
	testenv.NeedRoot(t, "the store mounts overlay snapshots and keeps file owners")
	st, err := store.Open(context.Background(), store.Options{Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "run"), Driver: driver, DriverOpts: opts})
	must(t, err)
	t.Cleanup(func() {
		_, _ = store.UnmountUnder(filepath.Join(dir, "root"), "")
		st.Close()
	})
	return st
}

// pullRich stores testbase's rich base (three layers umoci and GNU tar
// made, in an OCI layout skopeo wrote) as name.
func pullRich(t *testing.T, st *store.Store, name string) store.Image {
	t.Helper()
	base := testbase.OCILayout(t, testbase.Spec{Kind: testbase.Rich, Format: testbase.OCI})
	src, err := ocilayout.NewSource(base.Path, "latest")
	must(t, err)
	dst := st.NewImageDestination([]string{name})
	defer dst.Close()
	if _, err := transport.Copy(context.Background(), dst, src, transport.CopyOptions{}); err != nil {
		t.Fatalf("pulling the rich base: %v", err)
	}
	return dst.Image()
}

// ownImage records an image of one layer kiln applied itself (a layer
// with files and no blob: an export writes its tar).
func ownImage(t *testing.T, st *store.Store, name string) store.Image {
	t.Helper()
	ctx := context.Background()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	must(t, tw.WriteHeader(&tar.Header{Name: "own", Mode: 0o644, Size: 4, Typeflag: tar.TypeReg, ModTime: time.Unix(1e9, 0)}))
	tw.Write([]byte("own\n"))
	must(t, tw.Close())
	diffID := digest.FromBytes(buf.Bytes())
	l, err := st.ApplyLayer(ctx, "", diffID, bytes.NewReader(buf.Bytes()))
	must(t, err)
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + string(diffID) + `"]}}`)
	layer := ocispec.Descriptor{MediaType: image.MediaTypeOCILayer, Digest: diffID, Size: int64(buf.Len())}
	manifest, err := image.NewManifest(image.FormatOCI, image.FromBytes(ocispec.MediaTypeImageConfig, cfg), []ocispec.Descriptor{layer}, nil)
	must(t, err)
	img, err := st.CreateImage(ctx, store.NewImage{TopLayer: l.ID, Config: cfg, Manifest: manifest, MediaType: image.MediaTypeOCIManifest, Names: []string{name}, Created: time.Unix(1e9, 0)})
	must(t, err)
	return img
}

// populate fills st: the rich base under two names, an image of kiln's
// own layer, a container on the base with writes (a file with a user
// xattr, a deletion) left mounted, and one never mounted.
func populate(t *testing.T, st *store.Store) {
	t.Helper()
	ctx := context.Background()
	rich := pullRich(t, st, "localhost/rich:latest")
	must(t, st.AddNames(ctx, rich.ID, []string{"localhost/rich:v1"}))
	ownImage(t, st, "localhost/own:latest")
	work, err := st.CreateContainer(ctx, "work", rich.ID, rich.TopLayer, []byte(`{"state":"work"}`))
	must(t, err)
	mp, err := st.Mount(ctx, work.ID)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(mp, "new"), []byte("new\n"), 0o600))
	must(t, unix.Lsetxattr(filepath.Join(mp, "new"), "user.kiln", []byte("kept"), 0))
	must(t, os.Remove(filepath.Join(mp, "etc/passwd")))
	_, err = st.CreateContainer(ctx, "fresh", rich.ID, rich.TopLayer, []byte(`{"state":"fresh"}`))
	must(t, err)
}

// records is what must come through an export and an import unchanged.
type records struct {
	Layers     map[string]layerRecord
	Images     []store.Image
	Names      map[string]time.Time
	Containers []store.Container
}

type layerRecord struct {
	DiffID  digest.Digest
	Created time.Time
	Blobs   []store.LayerBlob
	Tar     digest.Digest // of the layer tar the store gives
}

func recordsOf(t *testing.T, st *store.Store) records {
	t.Helper()
	ctx := context.Background()
	in, err := st.Inventory(ctx)
	must(t, err)
	r := records{Layers: map[string]layerRecord{}, Images: in.Images, Names: in.NameAdded, Containers: in.Containers}
	for _, l := range in.Layers {
		blobs := in.LayerBlobs[l.ID]
		if len(blobs) == 0 {
			// A layer kiln made is exported as its tar, and imported as
			// that tar, a blob like any other.
			blobs = []store.LayerBlob{{Digest: l.DiffID, MediaType: ocispec.MediaTypeImageLayer, Size: l.Size}}
		}
		var buf bytes.Buffer
		must(t, st.LayerTar(ctx, l, &buf))
		r.Layers[l.ID] = layerRecord{DiffID: l.DiffID, Created: l.Created.UTC(), Blobs: blobs, Tar: digest.FromBytes(buf.Bytes())}
	}
	for i := range r.Images {
		r.Images[i].Created = r.Images[i].Created.UTC()
	}
	for i := range r.Containers {
		r.Containers[i].Created = r.Containers[i].Created.UTC()
	}
	return r
}

// TestExportImport: a store with a base other tools made, a layer kiln
// made, names and working containers goes through an export and an
// import into a store of another driver with every record, blob and
// layer tar unchanged; the containers' writes (xattrs and deletions too)
// and mount state come back; a second import adds nothing.
func TestExportImport(t *testing.T) {
	ctx := context.Background()
	src := open(t, t.TempDir(), "overlay", nil)
	populate(t, src)
	want := recordsOf(t, src)
	exp := filepath.Join(t.TempDir(), "export")
	var finished []string
	idx, err := backup.Export(ctx, src, exp, backup.ExportOptions{Progress: func(e backup.ProgressEvent) {
		if e.Finished {
			finished = append(finished, e.Item)
		}
	}})
	must(t, err)
	if got, want := len(finished), len(idx.Images)*2+len(idx.Layers)+len(idx.Containers); got != want {
		t.Errorf("%d items finished, want %d: %q", got, want, finished)
	}
	read, err := backup.ReadIndex(exp)
	must(t, err)
	if diff := cmp.Diff(idx, read); diff != "" {
		t.Errorf("index read back (-written +read):\n%s", diff)
	}

	dst := open(t, t.TempDir(), "vfs", nil)
	rep, err := backup.Import(ctx, dst, exp, backup.ImportOptions{Mount: true})
	must(t, err)
	if diff := cmp.Diff(backup.ImportReport{Layers: 4, Images: 2, Containers: 2}, rep); diff != "" {
		t.Errorf("import report (-want +got):\n%s", diff)
	}
	must(t, backup.Verify(ctx, dst, idx))
	got := recordsOf(t, dst)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records after export and import into vfs (-before +after):\n%s", diff)
	}

	work, err := dst.LookupContainer(ctx, "work")
	must(t, err)
	mp := dst.MountedAt(ctx, work.ID)
	if work.MountCount != 1 || mp == "" {
		t.Fatalf("container work: mount count %d, mounted at %q; want it mounted again", work.MountCount, mp)
	}
	if b, err := os.ReadFile(filepath.Join(mp, "new")); err != nil || string(b) != "new\n" {
		t.Errorf("new reads %q, %v", b, err)
	}
	buf := make([]byte, 16)
	if n, err := unix.Lgetxattr(filepath.Join(mp, "new"), "user.kiln", buf); err != nil || string(buf[:n]) != "kept" {
		t.Errorf("xattr user.kiln of new: %q, %v; want kept", buf[:max(n, 0)], err)
	}
	if _, err := os.Lstat(filepath.Join(mp, "etc/passwd")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("etc/passwd, deleted in the container, is back: %v", err)
	}
	fresh, err := dst.LookupContainer(ctx, "fresh")
	must(t, err)
	if fresh.MountCount != 0 {
		t.Errorf("container fresh: mount count %d, want 0", fresh.MountCount)
	}
	root, err := dst.Mount(ctx, fresh.ID)
	must(t, err)
	testbase.Verify(t, root, testbase.Rich)

	rep, err = backup.Import(ctx, dst, exp, backup.ImportOptions{Mount: true})
	must(t, err)
	if rep != (backup.ImportReport{}) {
		t.Errorf("second import added %+v, want nothing", rep)
	}
}

// TestExportFreezes: while Export runs, a writer in another process
// (another handle on the store) waits for it, and fails with
// ErrStoreFrozen naming the export once its lock_timeout is over; after
// the export writes go through again.
func TestExportFreezes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := open(t, dir, "overlay", nil)
	own := ownImage(t, st, "localhost/own:latest")
	other := open(t, dir, "overlay", map[string]string{"lock_timeout": "200ms"})
	exp := filepath.Join(t.TempDir(), "export")
	var during error
	tried := false
	_, err := backup.Export(ctx, st, exp, backup.ExportOptions{Who: "the freeze test", Progress: func(e backup.ProgressEvent) {
		if !tried {
			tried = true
			during = other.AddNames(ctx, own.ID, []string{"localhost/during:latest"})
		}
	}})
	must(t, err)
	if !errors.Is(during, store.ErrStoreFrozen) || !bytes.Contains([]byte(during.Error()), []byte("the freeze test")) {
		t.Errorf("a write during the export: %v, want ErrStoreFrozen naming the export", during)
	}
	if err := other.AddNames(ctx, own.ID, []string{"localhost/after:latest"}); err != nil {
		t.Errorf("a write after the export: %v", err)
	}
}

// TestImportRefusesDamage: an export whose files do not match their
// digests, or that did not finish, is refused, and what it names is not
// left half recorded.
func TestImportRefusesDamage(t *testing.T) {
	ctx := context.Background()
	src := open(t, t.TempDir(), "overlay", nil)
	populate(t, src)
	exp := filepath.Join(t.TempDir(), "export")
	idx, err := backup.Export(ctx, src, exp, backup.ExportOptions{})
	must(t, err)
	flip := func(path string) {
		b, err := os.ReadFile(path)
		must(t, err)
		b[len(b)/2] ^= 0xff
		must(t, os.WriteFile(path, b, 0o600))
	}
	var pulled backup.Layer // the first layer of the rich base
	for _, l := range idx.Layers {
		if pulled.ID == "" && l.Parent == "" && len(l.Blobs) > 0 {
			pulled = l
		}
	}
	var work backup.Container
	for _, c := range idx.Containers {
		if c.Name == "work" {
			work = c
		}
	}
	tests := []struct {
		name   string
		damage func(dir string)
		want   error
		check  func(t *testing.T, st *store.Store)
	}{
		{"layer blob", func(dir string) { flip(filepath.Join(dir, "blobs/sha256", pulled.Blobs[0].Digest.Encoded())) },
			store.ErrDigestMismatch, func(t *testing.T, st *store.Store) {
				if _, err := st.Layer(ctx, pulled.ID); err == nil {
					t.Errorf("layer %s was recorded from a damaged blob", pulled.ID)
				}
			}},
		{"container writes", func(dir string) {
			// The content of file new, not a header: the tar still reads.
			p := filepath.Join(dir, "containers", work.ID+".tar")
			b, err := os.ReadFile(p)
			must(t, err)
			must(t, os.WriteFile(p, bytes.Replace(b, []byte("new\n"), []byte("NEW\n"), 1), 0o600))
		},
			store.ErrDigestMismatch, func(t *testing.T, st *store.Store) {
				if _, err := st.LookupContainer(ctx, "work"); err == nil {
					t.Errorf("container work was made from damaged writes")
				}
			}},
		{"no index", func(dir string) { must(t, os.Remove(filepath.Join(dir, "index.json"))) }, backup.ErrNotExport, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "export")
			copyTree(t, exp, dir)
			tt.damage(dir)
			st := open(t, t.TempDir(), "vfs", nil)
			_, err := backup.Import(ctx, st, dir, backup.ImportOptions{})
			if !errors.Is(err, tt.want) {
				t.Fatalf("import: %v, want %v", err, tt.want)
			}
			if tt.check != nil {
				tt.check(t, st)
			}
		})
	}
}

// TestExportResumes: an export into a directory an earlier export wrote
// keeps the files that are there (an interrupted export resumes), writes
// the missing ones and removes what the store no longer holds.
func TestExportResumes(t *testing.T) {
	ctx := context.Background()
	src := open(t, t.TempDir(), "overlay", nil)
	populate(t, src)
	exp := filepath.Join(t.TempDir(), "export")
	idx, err := backup.Export(ctx, src, exp, backup.ExportOptions{})
	must(t, err)
	kept := filepath.Join(exp, "blobs/sha256", idx.Images[0].Config.Digest.Encoded())
	old := time.Unix(1e9, 0)
	must(t, os.Chtimes(kept, old, old))
	missing := filepath.Join(exp, "blobs/sha256", idx.Images[0].Manifest.Digest.Encoded())
	must(t, os.Remove(missing))
	stale := filepath.Join(exp, "blobs/sha256", digest.FromString("gone").Encoded())
	must(t, os.WriteFile(stale, []byte("gone"), 0o600))

	if _, err := backup.Export(ctx, src, exp, backup.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(kept); err != nil || !fi.ModTime().Equal(old) {
		t.Errorf("a blob the first export wrote was written again (%v)", err)
	}
	if _, err := os.Stat(missing); err != nil {
		t.Errorf("a missing blob was not written: %v", err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file the store does not hold was kept: %v", err)
	}
	if _, err := backup.ReadIndex(exp); err != nil {
		t.Error(err)
	}
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	must(t, filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o600)
	}))
}
