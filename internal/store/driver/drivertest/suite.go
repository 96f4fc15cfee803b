// Package drivertest is the conformance suite every storage driver passes:
// the same snapshot lifecycle, checked the same way, on a real filesystem.
package drivertest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/internal/store/driver"
	"github.com/kiln-build/kiln/internal/testenv"
)

// RequiresRoot skips t unless it runs as root (fails it in CI: testenv).
func RequiresRoot(t testing.TB) {
	t.Helper()
	testenv.NeedRoot(t, "drivers mount snapshots and keep file owners")
}

// Run runs the suite against drivers made by newDriver, one per subtest.
func Run(t *testing.T, newDriver func(t *testing.T) driver.Driver) {
	tests := []struct {
		name string
		fn   func(*testing.T, driver.Driver)
	}{
		{"ApplyAndMount", testApplyAndMount},
		{"DiffOfChanges", testDiffOfChanges},
		{"PromoteKeepsContentAndDiff", testPromote},
		{"PromoteIsIdempotent", testPromoteTwice},
		{"RoundTripThroughDiff", testRoundTrip},
		{"RemoveAndExists", testRemove},
		{"ParentChain", testParentChain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newDriver(t)) })
	}
}

// entry is one file of a test layer.
type entry struct {
	name, body string
	dir        bool
	whiteout   bool
}

func layerTar(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(e.body))}
		if e.dir {
			hdr = &tar.Header{Name: e.name + "/", Mode: 0o755, Typeflag: tar.TypeDir}
		}
		if e.whiteout {
			hdr = &tar.Header{Name: filepath.Join(filepath.Dir(e.name), ".wh."+filepath.Base(e.name)), Typeflag: tar.TypeReg}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if !e.dir && !e.whiteout {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func mustCreate(t *testing.T, d driver.Driver, id, parent string, layer []byte) {
	t.Helper()
	ctx := context.Background()
	if err := d.Create(ctx, id, parent); err != nil {
		t.Fatalf("Create(%s, %s): %v", id, parent, err)
	}
	if layer != nil {
		if _, err := d.ApplyDiff(ctx, id, bytes.NewReader(layer)); err != nil {
			t.Fatalf("ApplyDiff(%s): %v", id, err)
		}
	}
}

// tree lists the regular files and directories under root with contents.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case rel == ".":
		case fi.IsDir():
			out[rel+"/"] = ""
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = string(b)
		default:
			out[rel] = fi.Mode().Type().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mountTree(t *testing.T, d driver.Driver, id string, ro bool) map[string]string {
	t.Helper()
	ctx := context.Background()
	p, err := d.Mount(ctx, id, ro)
	if err != nil {
		t.Fatalf("Mount(%s): %v", id, err)
	}
	defer func() {
		if err := d.Unmount(ctx, id); err != nil {
			t.Errorf("Unmount(%s): %v", id, err)
		}
	}()
	return tree(t, p)
}

func diffNames(t *testing.T, d driver.Driver, id string) ([]string, string) {
	t.Helper()
	var buf bytes.Buffer
	if err := d.Diff(context.Background(), id, &buf, driver.DiffOptions{}); err != nil {
		t.Fatalf("Diff(%s): %v", id, err)
	}
	sum := fmt.Sprintf("%x", sha256.Sum256(buf.Bytes()))
	var names []string
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, filepath.Clean(h.Name))
	}
	sort.Strings(names)
	return names, sum
}

func testApplyAndMount(t *testing.T, d driver.Driver) {
	mustCreate(t, d, "base", "", layerTar(t, entry{name: "etc", dir: true}, entry{name: "etc/a", body: "A"}, entry{name: "b", body: "B"}))
	mustCreate(t, d, "top", "base", layerTar(t, entry{name: "b", whiteout: true}, entry{name: "c", body: "C"}))
	got := mountTree(t, d, "top", true)
	want := map[string]string{"etc/": "", "etc/a": "A", "c": "C"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tree of top (-want +got):\n%s", diff)
	}
}

// writeChanges mounts id writable and adds, modifies and deletes files.
func writeChanges(t *testing.T, d driver.Driver, id string) {
	t.Helper()
	ctx := context.Background()
	p, err := d.Mount(ctx, id, false)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(p, "new"), []byte("N"), 0o644))
	must(os.WriteFile(filepath.Join(p, "etc/a"), []byte("A2"), 0o644))
	must(os.Remove(filepath.Join(p, "b")))
	must(d.Unmount(ctx, id))
}

func testDiffOfChanges(t *testing.T, d driver.Driver) {
	mustCreate(t, d, "base", "", layerTar(t, entry{name: "etc", dir: true}, entry{name: "etc/a", body: "A"}, entry{name: "b", body: "B"}))
	mustCreate(t, d, "ctr", "base", nil)
	writeChanges(t, d, "ctr")
	got, _ := diffNames(t, d, "ctr")
	want := []string{".wh.b", "etc", "etc/a", "new"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("diff entries (-want +got):\n%s", diff)
	}
}

func testPromote(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	mustCreate(t, d, "base", "", layerTar(t, entry{name: "etc", dir: true}, entry{name: "etc/a", body: "A"}, entry{name: "b", body: "B"}))
	mustCreate(t, d, "ctr", "base", nil)
	writeChanges(t, d, "ctr")
	before, sumBefore := diffNames(t, d, "ctr")
	if err := d.Promote(ctx, "ctr", "layer2"); err != nil {
		t.Fatalf("Promote: %v", err)
	}
	after, sumAfter := diffNames(t, d, "layer2")
	if diff := cmp.Diff(before, after); diff != "" || sumBefore != sumAfter {
		t.Errorf("diff of promoted layer differs from the container's (-before +after):\n%s", diff)
	}
	if p, _ := d.Parent("ctr"); p != "layer2" {
		t.Errorf("Parent(ctr) = %q, want layer2", p)
	}
	if p, _ := d.Parent("layer2"); p != "base" {
		t.Errorf("Parent(layer2) = %q, want base", p)
	}
	empty, _ := diffNames(t, d, "ctr")
	if len(empty) != 0 {
		t.Errorf("container diff after promote = %v, want empty", empty)
	}
	want := map[string]string{"etc/": "", "etc/a": "A2", "new": "N"}
	if diff := cmp.Diff(want, mountTree(t, d, "ctr", false)); diff != "" {
		t.Errorf("container tree after promote (-want +got):\n%s", diff)
	}
}

func testPromoteTwice(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	mustCreate(t, d, "base", "", layerTar(t, entry{name: "a", body: "A"}))
	mustCreate(t, d, "ctr", "base", nil)
	for i := 0; i < 2; i++ {
		if err := d.Promote(ctx, "ctr", "l2"); err != nil {
			t.Fatalf("Promote #%d: %v", i+1, err)
		}
	}
	if diff := cmp.Diff(map[string]string{"a": "A"}, mountTree(t, d, "ctr", false)); diff != "" {
		t.Errorf("tree (-want +got):\n%s", diff)
	}
}

func testRoundTrip(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	mustCreate(t, d, "base", "", layerTar(t, entry{name: "etc", dir: true}, entry{name: "etc/a", body: "A"}, entry{name: "b", body: "B"}))
	mustCreate(t, d, "ctr", "base", nil)
	writeChanges(t, d, "ctr")
	var buf bytes.Buffer
	if err := d.Diff(ctx, "ctr", &buf, driver.DiffOptions{}); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, d, "copy", "base", buf.Bytes())
	if diff := cmp.Diff(mountTree(t, d, "ctr", true), mountTree(t, d, "copy", true)); diff != "" {
		t.Errorf("re-applied diff gives another tree (-ctr +copy):\n%s", diff)
	}
}

func testRemove(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	mustCreate(t, d, "gone", "", layerTar(t, entry{name: "a", body: "A"}))
	if _, err := d.Mount(ctx, "gone", false); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove(ctx, "gone"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if d.Exists("gone") {
		t.Error("snapshot exists after Remove")
	}
	if err := d.Remove(ctx, "gone"); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if _, lazy := d.(driver.ParentAtMount); lazy {
		// The parent's files are needed only by Mount.
		if err := d.Create(ctx, "x", "absent"); err != nil {
			t.Errorf("Create on a parent made later = %v, want nil", err)
		}
		if _, err := d.Mount(ctx, "x", false); !errors.Is(err, driver.ErrNotExist) {
			t.Errorf("Mount on absent parent = %v, want ErrNotExist", err)
		}
		if err := d.Remove(ctx, "x"); err != nil {
			t.Error(err)
		}
	} else if err := d.Create(ctx, "x", "absent"); !errors.Is(err, driver.ErrNotExist) {
		t.Errorf("Create on absent parent = %v, want ErrNotExist", err)
	}
	if err := d.Create(ctx, "../x", ""); err == nil {
		t.Error("Create accepted id ../x")
	}
}

func testParentChain(t *testing.T, d driver.Driver) {
	parent := ""
	want := map[string]string{}
	for i := 0; i < 30; i++ {
		id := fmt.Sprintf("l%d", i)
		name := fmt.Sprintf("f%02d", i)
		mustCreate(t, d, id, parent, layerTar(t, entry{name: name, body: id}))
		want[name] = id
		parent = id
	}
	if diff := cmp.Diff(want, mountTree(t, d, parent, true)); diff != "" {
		t.Errorf("tree of a 30-layer chain (-want +got):\n%s", diff)
	}
}
