package storagesetup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/storageconf"
	"github.com/kiln-build/kiln/internal/storagesetup/loop"
	"github.com/kiln-build/kiln/internal/storagesetup/loop/looptest"
	"github.com/kiln-build/kiln/internal/store/driver"
	"github.com/kiln-build/kiln/internal/store/driver/btrfs"
	"github.com/kiln-build/kiln/internal/testenv"
)

// setupEnv is a request whose files all live in a temp dir, with the
// store's mount path unmounted at the end even when the test fails.
func setupEnv(t *testing.T, c SetupConfig) Request {
	t.Helper()
	dir := t.TempDir()
	if c.MountPath == "" {
		c.MountPath = filepath.Join(dir, "store")
	}
	mp := c.MountPath
	t.Cleanup(func() {
		if err := unmountAll(mp); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return Request{
		Config: c, Host: Host{XFSQuota: xfsQuotaAvailable()}, Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "run"),
		Paths: Paths{StorageConf: filepath.Join(dir, "storage.conf"), Fstab: filepath.Join(dir, "fstab"), UnitDir: filepath.Join(dir, "units")},
	}
}

func applyPlan(t *testing.T, req Request) *Plan {
	t.Helper()
	p, err := MakePlan(context.Background(), req)
	if err != nil {
		t.Fatalf("MakePlan: %v", err)
	}
	if err := p.Apply(context.Background(), nil); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return p
}

// assertIdempotent checks that a second run has nothing to do.
func assertIdempotent(t *testing.T, req Request) {
	t.Helper()
	p, err := MakePlan(context.Background(), req)
	if err != nil {
		t.Fatalf("second MakePlan: %v", err)
	}
	if n := p.Changes(); n != 0 {
		for _, s := range p.Steps {
			t.Logf("done=%v %s", s.Done, s.Summary)
		}
		t.Errorf("second run would make %d changes, want 0", n)
	}
}

func readConf(t *testing.T, path string) storageconf.Config {
	t.Helper()
	var c storageconf.Config
	if _, err := toml.DecodeFile(path, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSetupOverlayOnXFSFile(t *testing.T) {
	img := looptest.Image(t, 512<<20)
	req := setupEnv(t, SetupConfig{Driver: "overlay", Devs: []string{img},
		ExtraOptions: []string{"mountopt=nodev"}})
	dry, err := MakePlan(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if sig, _ := ReadSignature(img); sig.Type != "" || dry.Changes() != 4 {
		t.Fatalf("after planning: %s on the image, %d changes planned; want nothing and 4", sig, dry.Changes())
	}
	applyPlan(t, req)
	mp := req.Config.MountPath
	m, ok := mountedAt(mp)
	if !ok || m.FSType != "xfs" || loop.BackingFile(m.Source) != img {
		t.Fatalf("mount at %s = %+v, %v; want xfs from a loop device of %s", mp, m, ok, img)
	}
	b, err := ProbeBacking(mp)
	if err != nil || !b.DType || b.FSType != "xfs" {
		t.Errorf("ProbeBacking = %+v, %v; want xfs with d_type", b, err)
	}
	sig, _ := ReadSignature(img)
	if !sig.IsKiln("xfs") {
		t.Errorf("signature %+v, want xfs labelled %s", sig, Label)
	}
	fstab, _ := os.ReadFile(req.Paths.Fstab)
	if want := img + " " + mp + " xfs loop"; !strings.Contains(string(fstab), want) {
		t.Errorf("fstab:\n%s\nwant a line starting %q", fstab, want)
	}
	c := readConf(t, req.Paths.StorageConf)
	if c.Storage.Driver != "overlay" || c.Storage.GraphRoot != mp || c.Storage.Options.Overlay.MountOpt != "nodev" {
		t.Errorf("storage.conf = %+v", c.Storage)
	}
	assertIdempotent(t, req)
}

func TestSetupBtrfsFileMakesIt(t *testing.T) {
	img := filepath.Join(t.TempDir(), "sub", "btrfs.img")
	looptest.Image(t, 1) // skips without root
	size, _ := ParseSizeSpec("600M")
	req := setupEnv(t, SetupConfig{Driver: "btrfs", Devs: []string{img}, Size: size})
	applyPlan(t, req)
	if fi, err := os.Stat(img); err != nil || fi.Size() != 600<<20 {
		t.Fatalf("image: %v, %v; want a 600 MiB file", fi, err)
	}
	if m, ok := mountedAt(req.Config.MountPath); !ok || m.FSType != "btrfs" {
		t.Fatalf("not mounted as btrfs: %+v", m)
	}
	if _, err := btrfs.New(driver.Options{Home: filepath.Join(req.Config.MountPath, "btrfs")}); err != nil {
		t.Errorf("the btrfs driver refuses the new filesystem: %v", err)
	}
	assertIdempotent(t, req)
}

func TestSetupRefusesForeignSignatures(t *testing.T) {
	for _, tt := range []struct {
		name string
		make func(t *testing.T, img string)
		want string
	}{
		{"ext4", func(t *testing.T, img string) { mustRun(t, "mkfs.ext4", "-F", "-q", img) }, "holds ext4"},
		{"dos partition table", func(t *testing.T, img string) { writeAt(t, img, 510, "\x55\xaa") }, "holds dos"},
		{"gpt", func(t *testing.T, img string) { writeAt(t, img, 512, "EFI PART") }, "holds gpt"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			img := looptest.Image(t, 512<<20)
			tt.make(t, img)
			req := setupEnv(t, SetupConfig{Driver: "overlay", Devs: []string{img}})
			_, err := MakePlan(context.Background(), req)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "WIPE_SIGNATURES=true") {
				t.Fatalf("MakePlan = %v, want a refusal saying %q and naming WIPE_SIGNATURES", err, tt.want)
			}
			req.Config.WipeSignatures = true
			applyPlan(t, req)
			if sig, _ := ReadSignature(img); !sig.IsKiln("xfs") {
				t.Errorf("after wiping: %+v", sig)
			}
			assertIdempotent(t, req)
		})
	}
}

func TestSetupGrowPart(t *testing.T) {
	img := looptest.Image(t, 512<<20)
	req := setupEnv(t, SetupConfig{Driver: "btrfs", Devs: []string{img}})
	applyPlan(t, req)
	before := fsTotal(t, req.Config.MountPath)
	req.Config.Size, _ = ParseSizeSpec("1G")
	req.Config.GrowPart = true
	p := applyPlan(t, req)
	after := fsTotal(t, req.Config.MountPath)
	if after < before+400<<20 {
		t.Errorf("filesystem %d -> %d bytes; want it grown by ~512 MiB (plan %d changes)", before, after, p.Changes())
	}
	assertIdempotent(t, req)
}

func TestSetupRefusesNonEmptyMountPath(t *testing.T) {
	img := looptest.Image(t, 512<<20)
	req := setupEnv(t, SetupConfig{Driver: "overlay", Devs: []string{img}})
	if err := os.MkdirAll(req.Config.MountPath, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFileT(t, filepath.Join(req.Config.MountPath, "kiln.db"), "x")
	if _, err := MakePlan(context.Background(), req); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("MakePlan = %v, want a refusal of a non-empty mount path", err)
	}
}

func TestSetupSystemdUnit(t *testing.T) {
	img := looptest.Image(t, 512<<20)
	req := setupEnv(t, SetupConfig{Driver: "overlay", Devs: []string{img}})
	req.Host.Systemd = true
	applyPlan(t, req)
	unit := filepath.Join(req.Paths.UnitDir, unitName(req.Config.MountPath))
	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"What=" + img, "Where=" + req.Config.MountPath, "Type=xfs", "Options=loop"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("unit %s lacks %q:\n%s", unit, want, b)
		}
	}
	if _, err := os.Stat(req.Paths.Fstab); !os.IsNotExist(err) {
		t.Errorf("fstab was written although systemd persists the mount")
	}
	assertIdempotent(t, req)
}

func TestSetupWithoutDevices(t *testing.T) {
	req := setupEnv(t, SetupConfig{Driver: "overlay"})
	req.Config.MountPath = ""
	applyPlan(t, req)
	if c := readConf(t, req.Paths.StorageConf); c.Storage.Driver != "overlay" || c.Storage.GraphRoot != req.Root {
		t.Errorf("storage.conf = %+v", c.Storage)
	}
	assertIdempotent(t, req)
	var st unix.Statfs_t
	if unix.Statfs(t.TempDir(), &st) == nil && st.Type != unix.BTRFS_SUPER_MAGIC {
		req.Config.Driver = "btrfs"
		if _, err := MakePlan(context.Background(), req); err == nil || !strings.Contains(err.Error(), "needs the store on btrfs") {
			t.Errorf("btrfs on %s: %v, want a refusal naming DEVS", driver.FSTypeName(st.Type), err)
		}
	}
}

func TestLVMNeedsDeviceMapper(t *testing.T) {
	req := setupEnv(t, SetupConfig{Driver: "overlay", VG: "kilnvg", LVName: "root"})
	req.Host.DeviceMapper = false
	_, err := MakePlan(context.Background(), req)
	if !errors.Is(err, storageconf.ErrDeviceMapper) || !strings.Contains(err.Error(), "device-mapper") {
		t.Errorf("MakePlan with VG and no device-mapper = %v", err)
	}
}

// TestLVMPlan: with VG and CONTAINER_ROOT_LV_NAME, setup plans lvm2's
// steps (a physical volume on each of DEVS, the volume group, the
// logical volume of the size asked) and then the filesystem on the
// logical volume, not on DEVS. It is a plan only: this machine's kernel,
// like CI's, has no device-mapper, so an LV cannot be made here (and
// making one would change the host's LVM state); TestLVMNeedsDeviceMapper
// covers what setup says on such a kernel.
func TestLVMPlan(t *testing.T) {
	testenv.NeedBinary(t, "lvm")
	vg := fmt.Sprintf("kilntest%d", os.Getpid())
	req := setupEnv(t, SetupConfig{Driver: "overlay", Devs: []string{"/dev/kiln-test-disk"}, VG: vg, LVName: "root", Size: SizeSpec{Percent: 40, Of: "FREE"}})
	req.Host.DeviceMapper = true
	p, err := MakePlan(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range p.Steps {
		if s.Done {
			t.Errorf("step %q is done already", s.Summary)
		}
		got = append(got, s.Summary)
	}
	lv := "/dev/" + vg + "/root"
	dir := filepath.Dir(req.Paths.StorageConf)
	want := []string{
		"make /dev/kiln-test-disk an LVM physical volume",
		"make volume group " + vg,
		"make logical volume " + lv + " (40%FREE)",
		"make XFS (ftype=1 for overlay's d_type, V5 with project-quota support) on " + lv + ", labelled kiln-storage",
		"mount " + lv + " on " + req.Config.MountPath + " (xfs, defaults)",
		"add the mount to " + req.Paths.Fstab,
		"write " + req.Paths.StorageConf + " (driver overlay, graphroot " + filepath.Join(dir, "store") + ")",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("plan (-want +got):\n%s", diff)
	}
}

func fsTotal(t *testing.T, dir string) int64 {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks) * st.Bsize
}

func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
}

func writeAt(t *testing.T, path string, off int64, s string) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte(s), off); err != nil {
		t.Fatal(err)
	}
}

func writeFileT(t *testing.T, path, s string) {
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
