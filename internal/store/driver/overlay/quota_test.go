package overlay

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/storagesetup/loop/looptest"
	"github.com/kiln-build/kiln/internal/store/driver"
	"github.com/kiln-build/kiln/internal/store/driver/drivertest"
)

// writeFile writes n bytes to path and syncs, returning the first error.
func writeFile(path string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, werr := f.Write(bytes.Repeat([]byte{'x'}, n))
	serr := f.Sync()
	return errors.Join(werr, serr, f.Close())
}

func bigLayer(t *testing.T, name string, n int) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(n), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(bytes.Repeat([]byte{'l'}, n)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestSizeLimit: on XFS with prjquota, a container made with size=8M
// cannot write past 8 MiB (EDQUOT), its image layers are not limited, and
// after a commit (promote) the container has its full limit again.
func TestSizeLimit(t *testing.T) {
	drivertest.RequiresRoot(t)
	ctx := context.Background()
	looptest.RequireXFSQuota(t)
	fs := looptest.New(t, "xfs", 512<<20, nil, "prjquota")
	d, err := New(driver.Options{Home: filepath.Join(fs.Dir, "overlay"), Opts: map[string]string{"size": "8M"}})
	if err != nil {
		t.Fatal(err)
	}
	od := d.(*Driver)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(d.Create(ctx, "base", ""))
	if _, err := d.ApplyDiff(ctx, "base", bytes.NewReader(bigLayer(t, "big", 12<<20))); err != nil {
		t.Fatalf("applying a 12 MiB layer under an 8 MiB container limit: %v", err)
	}
	must(d.Create(ctx, "ctr", "base"))
	p, err := d.Mount(ctx, "ctr", false)
	must(err)
	defer d.Unmount(ctx, "ctr")
	must(writeFile(filepath.Join(p, "small"), 4<<20))
	if err := writeFile(filepath.Join(p, "over"), 6<<20); !errors.Is(err, unix.EDQUOT) {
		t.Fatalf("writing past the limit = %v, want EDQUOT", err)
	}
	q, ok := od.readQuota("ctr")
	if !ok || q.project < firstProjectID {
		t.Fatalf("quota file of ctr = %+v, %v", q, ok)
	}
	used, limit, err := projectUsage(od.layout.Home, q.project)
	must(err)
	if limit != 8<<20 || used > limit || used < 4<<20 {
		t.Errorf("project %d: used %d, limit %d; want 4 MiB <= used <= limit = 8 MiB", q.project, used, limit)
	}
	must(os.Remove(filepath.Join(p, "over")))
	must(d.Unmount(ctx, "ctr"))
	must(d.Promote(ctx, "ctr", "l2"))
	p, err = d.Mount(ctx, "ctr", false)
	must(err)
	if q2, _ := od.readQuota("ctr"); q2.project == q.project || q2.project == 0 {
		t.Errorf("container kept project %d after promote (now %d)", q.project, q2.project)
	}
	if err := writeFile(filepath.Join(p, "after"), 6<<20); err != nil {
		t.Errorf("after commit the container should have its full limit again: %v", err)
	}
	if _, limit, _ := projectUsage(od.layout.Home, q.project); limit != 0 {
		t.Errorf("the promoted layer's project %d still has limit %d", q.project, limit)
	}
	st := map[string]string{}
	for _, kv := range d.Status() {
		st[kv[0]] = kv[1]
	}
	if st["Supports project quota"] != "true" || st["Backing Filesystem"] != "xfs" {
		t.Errorf("Status() = %v", st)
	}
}

// TestSizeNeedsProjectQuota: the size option is refused where the
// filesystem does not enforce project quotas.
func TestSizeNeedsProjectQuota(t *testing.T) {
	drivertest.RequiresRoot(t)
	fs := looptest.New(t, "xfs", 512<<20, nil, "")
	home := filepath.Join(fs.Dir, "overlay")
	_, err := New(driver.Options{Home: home, Opts: map[string]string{"size": "8M"}})
	if !errors.Is(err, driver.ErrUnsupported) {
		t.Fatalf("New with size on XFS without prjquota = %v, want ErrUnsupported", err)
	}
	t.Logf("refused as it should be: %v", err)
	if _, err := New(driver.Options{Home: home, Opts: map[string]string{"size": "lots"}}); err == nil {
		t.Error("New accepted size=lots")
	}
	d, err := New(driver.Options{Home: home})
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range d.Status() {
		if kv[0] == "Supports project quota" && kv[1] != "false" {
			t.Errorf("Supports project quota = %s on a filesystem mounted without prjquota", kv[1])
		}
	}
}

// TestProjectIDInherited checks the FS_IOC_FSSETXATTR half on a real XFS,
// which any kernel can do: a directory's project ID, with the inherit
// flag, passes to what is made inside it.
func TestProjectIDInherited(t *testing.T) {
	drivertest.RequiresRoot(t)
	fs := looptest.New(t, "xfs", 512<<20, nil, "")
	dir := filepath.Join(fs.Dir, "d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := setProjectID(dir, 123456); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(dir, "f"), 10); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, filepath.Join(dir, "f")} {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		var x fsxattr
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fsIocFsGetXattr, uintptr(unsafe.Pointer(&x)))
		f.Close()
		if errno != 0 || x.ProjID != 123456 {
			t.Errorf("%s: project %d (%v), want 123456", p, x.ProjID, errno)
		}
	}
}

func TestQuotaStructSizes(t *testing.T) {
	if got := unsafe.Sizeof(diskQuota{}); got != 112 {
		t.Errorf("sizeof(fs_disk_quota) = %d, want 112", got)
	}
	if got := unsafe.Sizeof(fsxattr{}); got != 28 {
		t.Errorf("sizeof(fsxattr) = %d, want 28", got)
	}
}
