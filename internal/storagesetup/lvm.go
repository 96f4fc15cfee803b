package storagesetup

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"

	"github.com/kiln-build/kiln/internal/storageconf"
)

// planLVM plans, where the kernel has device-mapper, to make DEVS
// physical volumes, the volume group VG on them and the logical volume
// CONTAINER_ROOT_LV_NAME in it, through lvm2's tools; the LV then takes
// the place of DEVS.
func (pl *planner) planLVM() error {
	c := pl.req.Config
	if !pl.req.Host.DeviceMapper {
		return fmt.Errorf("%w: VG and CONTAINER_ROOT_LV_NAME need LVM, which runs on the kernel's device-mapper, and this kernel has none (no device-mapper in /proc/misc): leave them unset and give DEVS= a block device or a file for kiln to use whole", storageconf.ErrDeviceMapper)
	}
	if c.VG == "" {
		return fmt.Errorf("CONTAINER_ROOT_LV_NAME=%s needs VG, the volume group to make it in", c.LVName)
	}
	if _, err := exec.LookPath("lvm"); err != nil {
		return fmt.Errorf("VG=%s needs lvm2's tools: apt-get install lvm2", c.VG)
	}
	lv := c.LVName
	if lv == "" {
		lv = "kiln-root-lv"
	}
	vg := c.VG
	for _, d := range pl.devs {
		dev := d
		s, _ := ReadSignature(dev)
		pl.add("make "+dev+" an LVM physical volume", s.Type == "LVM2_member", func(ctx context.Context) error {
			if s.Type != "" && !c.WipeSignatures {
				return fmt.Errorf("%s holds %s; set WIPE_SIGNATURES=true to wipe it", dev, s)
			}
			return runTool(ctx, "lvm", "pvcreate", "-y", "-ff", dev)
		})
	}
	haveVG := exec.Command("lvm", "vgs", vg).Run() == nil
	if !haveVG && len(pl.devs) == 0 {
		return fmt.Errorf("volume group %s does not exist: give DEVS to make it from", vg)
	}
	devs := pl.devs
	pl.add("make volume group "+vg, haveVG, func(ctx context.Context) error {
		return runTool(ctx, "lvm", append([]string{"vgcreate", vg}, devs...)...)
	})
	path := "/dev/" + vg + "/" + lv
	_, err := os.Stat(path)
	size := []string{"-l", "100%FREE"}
	if c.Size.Bytes > 0 {
		size = []string{"-L", strconv.FormatInt(c.Size.Bytes, 10) + "b"}
	} else if c.Size.Percent > 0 {
		size = []string{"-l", c.Size.String()}
	}
	pl.add(fmt.Sprintf("make logical volume %s (%s)", path, c.Size), err == nil, func(ctx context.Context) error {
		return runTool(ctx, "lvm", append(append([]string{"lvcreate", "-y", "-n", lv}, size...), vg)...)
	})
	if err != nil {
		pl.pendingLV = path
	}
	pl.devs = []string{path}
	pl.req.Config.Size = SizeSpec{} // the LV has the size
	return nil
}
