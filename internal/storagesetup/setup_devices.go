package storagesetup

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	units "github.com/docker/go-units"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/digestio"
	"github.com/kiln-build/kiln/internal/storagesetup/loop"
)

// growSlack is how much bigger than its filesystem a device must be
// before GROWPART grows the filesystem.
const growSlack = 64 << 20

func humanBytes(n int64) string { return units.BytesSize(float64(n)) }

// planFile checks one DEVS entry and, for a regular file, plans to create
// or grow it to CONTAINER_ROOT_LV_SIZE.
func (pl *planner) planFile(dev string) error {
	if pl.pendingLV == dev {
		return nil
	}
	c := pl.req.Config
	fi, err := os.Stat(dev)
	switch {
	case err == nil && fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0:
		return nil
	case err == nil && fi.Mode().IsRegular():
		want := c.Size.bytesOf(fi.Size() + freeBytes(filepath.Dir(dev)))
		if c.Size.Bytes == 0 && c.Size.Percent == 0 {
			want = fi.Size()
		}
		if want > fi.Size() && c.GrowPart {
			pl.add(fmt.Sprintf("grow %s from %s to %s", dev, humanBytes(fi.Size()), humanBytes(want)), false, func(context.Context) error {
				return os.Truncate(dev, want)
			})
			pl.fileGrownTo = want
		} else if want > fi.Size() {
			pl.plan.Warnings = append(pl.plan.Warnings, fmt.Sprintf("%s is %s, smaller than CONTAINER_ROOT_LV_SIZE=%s: set GROWPART=true to grow it", dev, humanBytes(fi.Size()), c.Size))
		}
		return nil
	case err == nil:
		return fmt.Errorf("DEVS: %s is neither a block device nor a regular file", dev)
	case !os.IsNotExist(err):
		return err
	case strings.HasPrefix(dev, "/dev/"):
		return fmt.Errorf("DEVS: no such device %s", dev)
	case c.Size.Bytes == 0:
		return fmt.Errorf("DEVS: %s does not exist: give CONTAINER_ROOT_LV_SIZE as a size (e.g. 20G), or a percentage of free space (40%%FREE), to create it", dev)
	}
	size := c.Size.bytesOf(freeBytes(existingAncestor(filepath.Dir(dev))))
	if c.Size.Bytes == 0 && c.Size.Percent == 0 {
		return fmt.Errorf("DEVS: %s does not exist: give CONTAINER_ROOT_LV_SIZE to create it", dev)
	}
	pl.add(fmt.Sprintf("create %s as a sparse file of %s", dev, humanBytes(size)), false, func(context.Context) error {
		if err := os.MkdirAll(filepath.Dir(dev), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(dev, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if err := f.Truncate(size); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
	return nil
}

func freeBytes(dir string) int64 {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return 0
	}
	return int64(st.Bavail) * st.Bsize
}

func (pl *planner) readSignatures() error {
	pl.sigs = make([]Signature, len(pl.devs))
	for i, d := range pl.devs {
		if _, err := os.Stat(d); os.IsNotExist(err) {
			continue
		}
		s, err := ReadSignature(d)
		if err != nil {
			return err
		}
		if s.Type == "" && hasPartitions(d) {
			s.Type = "partitions"
		}
		pl.sigs[i] = s
	}
	return nil
}

// ours reports whether every device already holds the filesystem this
// setup made for the driver.
func (pl *planner) ours() bool {
	for _, s := range pl.sigs {
		if !s.IsKiln(pl.fs) || s.UUID != pl.sigs[0].UUID {
			return false
		}
	}
	return true
}

// planMkfs refuses devices holding something else unless WIPE_SIGNATURES
// says so, and plans wipe and mkfs where the filesystem is not there yet.
func (pl *planner) planMkfs(ctx context.Context) error {
	if pl.ours() {
		pl.add(fmt.Sprintf("%s on %s made by kiln storage setup", pl.fs, strings.Join(pl.devs, " ")), true, nil)
		return nil
	}
	pl.fresh = true
	var foreign []string
	for i, s := range pl.sigs {
		if s.Type != "" {
			foreign = append(foreign, fmt.Sprintf("%s holds %s", pl.devs[i], s))
		}
	}
	if len(foreign) > 0 && !pl.req.Config.WipeSignatures {
		return fmt.Errorf("refusing to overwrite: %s; set WIPE_SIGNATURES=true to wipe it and make %s for %s", strings.Join(foreign, ", "), pl.fs, pl.plan.Driver)
	}
	if err := pl.planUnmountOld(); err != nil {
		return err
	}
	for i, s := range pl.sigs {
		if s.Type == "" {
			continue
		}
		dev := pl.devs[i]
		pl.add(fmt.Sprintf("wipe %s (it holds %s)", dev, s), false, func(context.Context) error { return wipe(dev) })
	}
	var fsBytes int64
	c := pl.req.Config
	if len(pl.devs) == 1 && pl.pendingLV == "" && !c.GrowPart && (c.Size.Bytes > 0 || c.Size.Percent > 0) {
		if fi, err := os.Stat(pl.devs[0]); err == nil && !fi.Mode().IsRegular() {
			size, err := deviceSize(pl.devs[0])
			if err != nil {
				return err
			}
			fsBytes = min(c.Size.bytesOf(size), size)
		}
	}
	what := pl.fs
	if pl.fs == "xfs" {
		what = "XFS (ftype=1 for overlay's d_type, V5 with project-quota support)"
	}
	if fsBytes > 0 {
		what += " of " + humanBytes(fsBytes)
	}
	devs := pl.devs
	pl.add(fmt.Sprintf("make %s on %s, labelled %s", what, strings.Join(devs, " "), Label), false, func(ctx context.Context) error {
		return mkfs(ctx, pl.fs, devs, fsBytes)
	})
	return nil
}

// planUnmountOld plans to unmount a filesystem of ours that is mounted
// where the new one goes, when the store on it is empty; any other mount
// of a device about to be remade is refused.
func (pl *planner) planUnmountOld() error {
	ms, err := Mounts()
	if err != nil {
		return err
	}
	for _, m := range ms {
		for _, d := range pl.devs {
			if !sameDevice(m, d) {
				continue
			}
			if m.Target != pl.plan.MountPath {
				return fmt.Errorf("%s is mounted at %s: unmount it first", d, m.Target)
			}
			if !storeEmpty(m.Target) {
				return fmt.Errorf("%s is mounted at %s and holds a store: `kiln storage export` and `kiln storage reset --force` it first, or use `kiln storage migrate`", d, m.Target)
			}
			target := m.Target
			pl.add(fmt.Sprintf("unmount the old filesystem at %s", target), false, func(context.Context) error {
				return unmountAll(target)
			})
		}
	}
	return nil
}

func unmountAll(target string) error {
	for {
		if _, ok := mountedAt(target); !ok {
			return nil
		}
		if err := unix.Unmount(target, 0); err != nil {
			return fmt.Errorf("unmounting %s: %w", target, err)
		}
	}
}

// storeEmpty reports whether the store at root has no layers or
// containers in any driver's home.
func storeEmpty(root string) bool {
	for _, d := range []string{"overlay", "vfs", "btrfs"} {
		ents, _ := os.ReadDir(filepath.Join(root, d))
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), ".") && e.Name() != "l" && e.Name() != "empty" {
				return false
			}
		}
	}
	return true
}

// planMount plans to mount the filesystem at the mount path, unless it is
// mounted there already.
func (pl *planner) planMount() error {
	mp := pl.plan.MountPath
	if m, ok := mountedAt(mp); ok && !pl.fresh {
		for _, d := range pl.devs {
			if m.FSType == pl.fs && sameDevice(m, d) {
				if pl.opts == "prjquota" && !strings.Contains(m.Options, "prjquota") && !strings.Contains(m.Options, "pquota") {
					pl.plan.Warnings = append(pl.plan.Warnings, fmt.Sprintf("%s is mounted without prjquota: unmount it and run setup again for per-container size limits", mp))
				}
				pl.add(fmt.Sprintf("%s mounted on %s", d, mp), true, nil)
				return nil
			}
		}
		return fmt.Errorf("%s is already a mount point of %s (%s): unmount it, or choose another CONTAINER_ROOT_LV_MOUNT_PATH", mp, m.Source, m.FSType)
	} else if ok && !pl.unmounting(mp) {
		return fmt.Errorf("%s is already a mount point of %s (%s): unmount it, or choose another CONTAINER_ROOT_LV_MOUNT_PATH", mp, m.Source, m.FSType)
	}
	if !pl.unmounting(mp) && !dirEmpty(mp) {
		return fmt.Errorf("%s is not empty: the new filesystem would hide what is there (`kiln storage export` a store first), or choose another CONTAINER_ROOT_LV_MOUNT_PATH", mp)
	}
	dev, opts := pl.devs[0], pl.opts
	desc := opts
	if desc == "" {
		desc = "defaults"
	}
	pl.add(fmt.Sprintf("mount %s on %s (%s, %s)", dev, mp, pl.fs, desc), false, func(context.Context) error {
		return mountDevice(dev, mp, pl.fs, opts)
	})
	return nil
}

func (pl *planner) unmounting(mp string) bool {
	for _, s := range pl.plan.Steps {
		if s.Summary == "unmount the old filesystem at "+mp {
			return true
		}
	}
	return false
}

// planGrow plans, with GROWPART, to grow an existing filesystem to fill
// its device (a grown file's loop device learns its new size first).
func (pl *planner) planGrow() {
	if !pl.req.Config.GrowPart || pl.fresh || len(pl.devs) != 1 {
		return
	}
	dev := pl.devs[0]
	size, err := deviceSize(dev)
	if err != nil {
		return
	}
	if pl.fileGrownTo > size {
		size = pl.fileGrownTo
	}
	if size-pl.sigs[0].Size < growSlack {
		pl.add(fmt.Sprintf("%s fills %s", pl.fs, dev), true, nil)
		return
	}
	mp := pl.plan.MountPath
	pl.add(fmt.Sprintf("grow %s on %s from %s to fill %s (%s)", pl.fs, mp, humanBytes(pl.sigs[0].Size), dev, humanBytes(size)), false, func(ctx context.Context) error {
		if fi, err := os.Stat(dev); err == nil && fi.Mode().IsRegular() {
			if l := loop.Find(dev); l != "" {
				if err := loop.SetCapacity(l); err != nil {
					return err
				}
			}
		}
		return growFS(ctx, pl.fs, mp)
	})
}

// mountSpec is what persistence names: the source (UUID= for a block
// device, the file for a loop-mounted file) and the options.
func (pl *planner) mountSpec(uuid string) (string, string) {
	opts := pl.opts
	if fi, err := os.Stat(pl.devs[0]); (err == nil && fi.Mode().IsRegular()) || (err != nil && pl.pendingLV == "") {
		return pl.devs[0], strings.Trim("loop,"+opts, ",")
	}
	return "UUID=" + uuid, opts
}

// planPersist plans the systemd mount unit or the fstab line.
func (pl *planner) planPersist() error {
	mp, p := pl.plan.MountPath, pl.req.Paths
	content := func() (string, error) {
		uuid := pl.sigs[0].UUID
		if pl.fresh {
			s, err := ReadSignature(pl.devs[0])
			if err != nil {
				return "", err
			}
			uuid = s.UUID
		}
		what, opts := pl.mountSpec(uuid)
		if pl.req.Host.Systemd {
			if strings.HasPrefix(what, "UUID=") {
				what = "/dev/disk/by-uuid/" + strings.TrimPrefix(what, "UUID=")
			}
			return mountUnit(what, mp, pl.fs, opts), nil
		}
		old, err := os.ReadFile(p.Fstab)
		if err != nil && !os.IsNotExist(err) {
			return "", err
		}
		s, _ := updateFstab(string(old), mp, fstabLine(what, mp, pl.fs, opts))
		return s, nil
	}
	file, what := p.Fstab, "add the mount to "+p.Fstab
	if pl.req.Host.Systemd {
		file = filepath.Join(p.UnitDir, unitName(mp))
		what = "write the systemd mount unit " + file
	}
	done := false
	if !pl.fresh {
		want, err := content()
		if err != nil {
			return err
		}
		old, _ := os.ReadFile(file)
		done = string(old) == want
	}
	pl.add(what, done, func(ctx context.Context) error {
		want, err := content()
		if err != nil {
			return err
		}
		if err := writeAtomic(file, []byte(want), 0o644); err != nil {
			return err
		}
		return pl.enableUnit(ctx, filepath.Base(file))
	})
	return nil
}

func (pl *planner) enableUnit(ctx context.Context, unit string) error {
	if !pl.req.Host.Systemd || !pl.req.Host.RunSystemctl {
		return nil
	}
	if err := runTool(ctx, "systemctl", "daemon-reload"); err != nil {
		return err
	}
	return runTool(ctx, "systemctl", "enable", unit)
}

// writeAtomic writes path atomically (digestio.WriteFileAtomic), making
// its directory first.
func writeAtomic(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return digestio.WriteFileAtomic(path, data, perm)
}
