package run

import (
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
)

func TestContainerRootMount(t *testing.T) {
	tests := []struct {
		name, mountinfo string
		want            bool
	}{
		{"host ext4", "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n", false},
		{"host btrfs subvolume", "30 1 0:27 /@ / rw,relatime shared:1 - btrfs /dev/sda2 rw,subvol=/@\n", false},
		{"runc bind rootfs", "612 580 254:0 /tmp/TestX/001/rootfs / rw,relatime - ext4 /dev/vda rw\n", true},
		{"runc on btrfs", "612 580 0:27 /@/var/lib/ci/rootfs / rw - btrfs /dev/sda2 rw\n", true},
		{"docker overlay", "500 450 0:52 / / rw,relatime master:1 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/ABC:/var/lib/docker/overlay2/l/DEF,upperdir=/var/lib/docker/overlay2/x/diff,workdir=/var/lib/docker/overlay2/x/work\n", true},
		{"podman overlay", "500 450 0:52 / / rw - overlay overlay rw,lowerdir=/var/lib/containers/storage/overlay/l/A,upperdir=/var/lib/containers/storage/overlay/b/diff\n", true},
		{"live system overlay", "25 1 0:22 / / rw - overlay overlay rw,lowerdir=/run/rootfsbase,upperdir=/run/overlayfs/rw\n", false},
		{"last root mount wins", "27 1 254:0 /x / rw - ext4 /dev/vda rw\n28 27 254:0 / / rw - ext4 /dev/vda rw\n", false},
		{"no root mount", "28 27 0:5 / /proc rw - proc proc rw\n", false},
	}
	for _, tt := range tests {
		ms, err := mountinfo.GetMountsFromReader(strings.NewReader(tt.mountinfo), rootMounts)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := containerRootMount(ms); got != tt.want {
			t.Errorf("%s: containerRootMount = %v, want %v", tt.name, got, tt.want)
		}
	}
}
