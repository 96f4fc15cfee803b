package storagesetup

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadSetupFile(t *testing.T) {
	in := `# container-storage-setup style
STORAGE_DRIVER=overlay2
export DEVS="/dev/vdb /dev/vdc"
CONTAINER_ROOT_LV_MOUNT_PATH='/var/lib/kiln'
CONTAINER_ROOT_LV_SIZE=40%FREE
GROWPART=true   # grow it
WIPE_SIGNATURES=yes
EXTRA_STORAGE_OPTIONS="--storage-opt overlay2.size=10G --storage-opt=min_free_space=5%"
VG=vg0
CONTAINER_ROOT_LV_NAME=kiln-lv
POOL_AUTOEXTEND_PERCENT=20
`
	var c SetupConfig
	if err := c.readSetup(strings.NewReader(in), "test"); err != nil {
		t.Fatal(err)
	}
	want := SetupConfig{
		Driver: "overlay", Devs: []string{"/dev/vdb", "/dev/vdc"}, MountPath: "/var/lib/kiln",
		Size: SizeSpec{Percent: 40, Of: "FREE"}, GrowPart: true, WipeSignatures: true,
		ExtraOptions: []string{"size=10G", "min_free_space=5%"}, VG: "vg0", LVName: "kiln-lv",
		Warnings: []string{"POOL_AUTOEXTEND_PERCENT is a devicemapper thin-pool setting; devicemapper was removed, so it is ignored"},
	}
	if diff := cmp.Diff(want, c, cmp.AllowUnexported(SizeSpec{})); diff != "" {
		t.Errorf("parsed (-want +got):\n%s", diff)
	}
}

func TestSetupFileErrors(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"STORAGE_DRIVER=devicemapper", "removed upstream"},
		{"STORAGE_DRIVER=aufs", "unknown STORAGE_DRIVER"},
		{"CONTAINER_ROOT_LV_SIZE=140%FREE", "bad CONTAINER_ROOT_LV_SIZE"},
		{"CONTAINER_ROOT_LV_SIZE=lots", "bad CONTAINER_ROOT_LV_SIZE"},
		{"GROWPART=maybe", "bad GROWPART"},
		{"EXTRA_STORAGE_OPTIONS=--storage-opt dm.basesize=20G", "devicemapper option"},
		{"DEVS", "want KEY=VALUE"},
		{`DEVS="/dev/vdb`, "unterminated quote"},
	} {
		var c SetupConfig
		err := c.readSetup(strings.NewReader(tt.in), "f")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v, want an error saying %q", tt.in, err, tt.want)
		}
	}
}

func TestSizeSpec(t *testing.T) {
	for _, tt := range []struct {
		in   string
		free int64
		want int64
	}{
		{"40%FREE", 1000, 400},
		{"100%FREE", 1000, 1000},
		{"20G", 1, 20 << 30},
		{"512m", 1, 512 << 20},
		{"", 77, 77},
	} {
		s, err := ParseSizeSpec(tt.in)
		if err != nil {
			t.Fatalf("%q: %v", tt.in, err)
		}
		if got := s.bytesOf(tt.free); got != tt.want {
			t.Errorf("%q of %d = %d, want %d", tt.in, tt.free, got, tt.want)
		}
	}
}

func TestUnitName(t *testing.T) {
	for in, want := range map[string]string{
		"/var/lib/kiln": "var-lib-kiln.mount",
		"/srv/my-store": `srv-my\x2dstore.mount`,
		"/":             "-.mount",
	} {
		if got := unitName(in); got != want {
			t.Errorf("unitName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUpdateFstab(t *testing.T) {
	old := "UUID=1 / ext4 defaults 0 1\n# kiln storage setup\nUUID=2 /var/lib/kiln xfs defaults 0 0\n"
	line := "UUID=3 /var/lib/kiln btrfs defaults 0 0"
	got, changed := updateFstab(old, "/var/lib/kiln", line)
	want := "UUID=1 / ext4 defaults 0 1\n# kiln storage setup\n" + line + "\n"
	if !changed || got != want {
		t.Errorf("updateFstab = %q, %v; want %q, true", got, changed, want)
	}
	if again, changed := updateFstab(got, "/var/lib/kiln", line); changed || again != got {
		t.Errorf("second update changed it: %q", again)
	}
}
