package btrfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/store/driver"
)

func TestQuotaStructSizes(t *testing.T) {
	if got := unsafe.Sizeof(qgroupLimitArgs{}); got != 48 {
		t.Errorf("sizeof(btrfs_ioctl_qgroup_limit_args) = %d, want 48", got)
	}
}

// bigLayer is a layer tar holding one file of n bytes.
func bigLayer(t *testing.T, name string, n int) *bytes.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(n), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(bytes.Repeat([]byte{'x'}, n)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(buf.Bytes())
}

// qgroupLimit returns the max_excl column `btrfs qgroup show` prints for
// the subvolume at path ("none" without a limit), or "" when btrfs-progs
// is not installed; the test only uses it to cross-check the ioctls.
func qgroupLimit(t *testing.T, mnt, path string) string {
	t.Helper()
	if _, err := exec.LookPath("btrfs"); err != nil {
		return ""
	}
	sid, err := subvolID(path)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("btrfs", "qgroup", "show", "-e", "--raw", "--sync", mnt).CombinedOutput()
	if err != nil {
		t.Fatalf("btrfs qgroup show: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[0] == "0/"+strconv.FormatUint(sid, 10) {
			return f[3]
		}
	}
	t.Fatalf("no qgroup 0/%d in\n%s", sid, out)
	return ""
}

// TestSizeLimit: with size=8M a container may write 8 MiB, whatever the
// size of its image (a 24 MiB layer here, never limited); a write past
// the limit fails with EDQUOT; after a commit (Promote) the layer has no
// limit and the container has it again, on its new subvolume.
func TestSizeLimit(t *testing.T) {
	ctx := context.Background()
	mnt := newBtrfs(t)
	dd, err := New(driver.Options{Home: filepath.Join(mnt, "btrfs"), Opts: map[string]string{"size": "8M"}})
	if err != nil {
		t.Fatal(err)
	}
	d := dd.(*Driver)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	if !quotaEnabled(mnt) {
		t.Error("quotas are not enabled after New with a size")
	}
	must(d.Create(ctx, "base", ""))
	if _, err := d.ApplyDiff(ctx, "base", bigLayer(t, "image-data", 24<<20)); err != nil {
		t.Fatalf("applying a 24 MiB layer with size=8M: %v (layers must not be limited)", err)
	}
	must(d.Create(ctx, "ctr", "base"))
	p, err := d.Mount(ctx, "ctr", false)
	must(err)
	must(os.WriteFile(filepath.Join(p, "small"), make([]byte, 4<<20), 0o644))
	err = os.WriteFile(filepath.Join(p, "big"), make([]byte, 16<<20), 0o644)
	if !errors.Is(err, unix.EDQUOT) {
		t.Fatalf("writing 16 MiB more into an 8M container = %v, want EDQUOT", err)
	}
	must(os.Remove(filepath.Join(p, "big")))
	if got := qgroupLimit(t, mnt, d.ContentDir("ctr")); got != "" && got != "8388608" {
		t.Errorf("container's max_excl = %s, want 8388608", got)
	}

	must(d.Promote(ctx, "ctr", "l2"))
	if got := qgroupLimit(t, mnt, d.ContentDir("l2")); got != "" && got != "none" {
		t.Errorf("committed layer's max_excl = %s, want none", got)
	}
	if got := qgroupLimit(t, mnt, d.ContentDir("ctr")); got != "" && got != "8388608" {
		t.Errorf("container's max_excl after commit = %s, want 8388608", got)
	}
	p, err = d.Mount(ctx, "ctr", false)
	must(err)
	must(os.WriteFile(filepath.Join(p, "again"), make([]byte, 6<<20), 0o644))
	if err := os.WriteFile(filepath.Join(p, "big"), make([]byte, 16<<20), 0o644); !errors.Is(err, unix.EDQUOT) {
		t.Fatalf("writing past the limit after a commit = %v, want EDQUOT", err)
	}
	for _, id := range []string{"ctr", "l2", "base"} {
		must(d.Remove(ctx, id))
	}
	if st := d.Status(); !strings.Contains(st[len(st)-1][1], "8MiB") {
		t.Errorf("status = %v, want the limit", st)
	}
}

// TestSizeOptionRefused: a bad size is refused, and no size leaves
// quotas off.
func TestSizeOptionRefused(t *testing.T) {
	mnt := newBtrfs(t)
	if _, err := New(driver.Options{Home: filepath.Join(mnt, "btrfs"), Opts: map[string]string{"size": "lots"}}); err == nil {
		t.Error("New accepted size=lots")
	}
	if _, err := New(driver.Options{Home: filepath.Join(mnt, "btrfs")}); err != nil {
		t.Fatal(err)
	}
	if quotaEnabled(mnt) {
		t.Error("quotas were enabled without a size option")
	}
}
