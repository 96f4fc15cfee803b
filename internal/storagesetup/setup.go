// Package storagesetup prepares a host for the store, as
// container-storage-setup did: it reads the KEY=VALUE setup file, probes
// the backing filesystem, and plans and applies what the store needs
// (files or block devices, loop devices, LVM, mkfs, the mount with its
// fstab line or systemd unit, storage.conf). A plan says what it would
// change before it changes anything, and applying it twice changes
// nothing the second time.
package storagesetup

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/store/driver"
)

// Paths are the files `kiln storage setup` writes; tests point them into
// a temp dir so that they never touch the host's.
type Paths struct {
	StorageConf string // storage.conf, where Resolve reads it
	Fstab       string // /etc/fstab
	UnitDir     string // /etc/systemd/system
}

// Host is what setup needs to know of the machine.
type Host struct {
	Systemd      bool // systemd is PID 1: persist with a mount unit
	RunSystemctl bool // run systemctl daemon-reload/enable after writing a unit
	XFSQuota     bool // the kernel's XFS has quota support (prjquota mounts)
	DeviceMapper bool // the kernel has device-mapper (LVM works)
}

// DetectHost looks at this machine.
func DetectHost() Host {
	comm, _ := os.ReadFile("/proc/1/comm")
	sd := strings.TrimSpace(string(comm)) == "systemd"
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		sd = false
	}
	return Host{Systemd: sd, RunSystemctl: sd, XFSQuota: xfsQuotaAvailable(), DeviceMapper: deviceMapperAvailable()}
}

// xfsQuotaAvailable: a kernel built with CONFIG_XFS_QUOTA has
// /proc/fs/xfs/xqmstat.
func xfsQuotaAvailable() bool {
	_, err := os.Stat("/proc/fs/xfs/xqmstat")
	return err == nil
}

// deviceMapperAvailable: device-mapper registers a misc device.
func deviceMapperAvailable() bool {
	b, _ := os.ReadFile("/proc/misc")
	return strings.Contains(string(b), "device-mapper")
}

// Request is one run of `kiln storage setup`.
type Request struct {
	Config        SetupConfig
	Paths         Paths
	Host          Host
	Root, RunRoot string // the store's graph root and run root as resolved now
}

// Step is one change setup makes. Done steps are already so.
type Step struct {
	Summary string
	Done    bool
	do      func(ctx context.Context) error
}

// Plan is what setup will do, worked out before anything is changed.
type Plan struct {
	Driver    string
	MountPath string
	Steps     []Step
	Warnings  []string
}

// Changes counts the steps that would change something.
func (p *Plan) Changes() int {
	n := 0
	for _, s := range p.Steps {
		if !s.Done {
			n++
		}
	}
	return n
}

// Apply carries out the steps not yet done, in order, reporting each
// through progress before it runs. It stops at the first error.
func (p *Plan) Apply(ctx context.Context, progress func(Step)) error {
	for _, s := range p.Steps {
		if s.Done {
			continue
		}
		if progress != nil {
			progress(s)
		}
		if err := s.do(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.Summary, err)
		}
	}
	return nil
}

// planner carries what the steps share.
type planner struct {
	req   Request
	plan  *Plan
	fs    string // filesystem the driver wants
	devs  []string
	opts  string // mount options
	sigs  []Signature
	fresh bool // the filesystem is made by this run

	pendingLV   string // the LV this run creates (not there to inspect yet)
	fileGrownTo int64  // the size a DEVS file is grown to by this run
}

// MakePlan checks the request against the machine and works out the
// steps. It changes nothing. Errors say why setup refuses.
func MakePlan(ctx context.Context, req Request) (*Plan, error) {
	c := req.Config
	drv := c.Driver
	if drv == "" {
		drv = "overlay"
	}
	mp := c.MountPath
	if mp == "" {
		mp = req.Root
	}
	mp, err := filepath.Abs(mp)
	if err != nil {
		return nil, err
	}
	pl := &planner{req: req, plan: &Plan{Driver: drv, MountPath: mp, Warnings: c.Warnings}, fs: fsFor(drv), devs: c.Devs}
	if c.VG != "" || c.LVName != "" {
		if err := pl.planLVM(); err != nil {
			return nil, err
		}
	}
	if len(pl.devs) == 0 {
		if err := pl.checkBacking(); err != nil {
			return nil, err
		}
	} else if err := pl.planDevices(ctx); err != nil {
		return nil, err
	}
	if err := pl.checkStoreDriver(); err != nil {
		return nil, err
	}
	if err := pl.planStorageConf(); err != nil {
		return nil, err
	}
	return pl.plan, nil
}

func (pl *planner) add(summary string, done bool, do func(ctx context.Context) error) {
	pl.plan.Steps = append(pl.plan.Steps, Step{Summary: summary, Done: done, do: do})
}

// checkBacking makes sure the driver works where the store already is,
// when no device is given.
func (pl *planner) checkBacking() error {
	dir := existingAncestor(pl.plan.MountPath)
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return err
	}
	if pl.plan.Driver == "btrfs" && st.Type != unix.BTRFS_SUPER_MAGIC {
		return fmt.Errorf("STORAGE_DRIVER=btrfs needs the store on btrfs, and %s is on %s: give DEVS= a block device or a file to make a btrfs filesystem on, or put CONTAINER_ROOT_LV_MOUNT_PATH on btrfs", pl.plan.MountPath, driver.FSTypeName(st.Type))
	}
	if pl.plan.Driver == "overlay" {
		if ok, err := SupportsDType(dir); err == nil && !ok {
			return fmt.Errorf("overlay needs d_type, and the filesystem of %s has none (XFS made with ftype=0?): give DEVS= a device to make XFS with ftype=1 on", pl.plan.MountPath)
		}
	}
	return nil
}

func existingAncestor(p string) string {
	for {
		if _, err := os.Stat(p); err == nil || p == "/" {
			return p
		}
		p = filepath.Dir(p)
	}
}

// checkStoreDriver refuses to switch the driver under an existing store:
// its images would become unreadable.
func (pl *planner) checkStoreDriver() error {
	root := pl.plan.MountPath
	if len(pl.devs) > 0 && pl.fresh {
		return nil // a new filesystem holds no store
	}
	for _, other := range []string{"overlay", "vfs", "btrfs"} {
		if other == pl.plan.Driver {
			continue
		}
		if !dirEmpty(filepath.Join(root, other)) {
			return fmt.Errorf("the store at %s uses the %s driver and holds data: run `kiln storage migrate --driver %s`, or `kiln storage export`, `kiln storage reset --force`, then setup again and `kiln storage import`", root, other, pl.plan.Driver)
		}
	}
	return nil
}

// planDevices works out the device steps: create or grow a file, wipe,
// make the filesystem, mount, grow, persist.
func (pl *planner) planDevices(ctx context.Context) error {
	if len(pl.devs) > 1 && pl.fs != "btrfs" {
		return fmt.Errorf("DEVS names %d devices: only btrfs spans several devices without LVM; give one device for %s", len(pl.devs), pl.plan.Driver)
	}
	for i, d := range pl.devs {
		abs, err := filepath.Abs(d)
		if err != nil {
			return err
		}
		pl.devs[i] = abs
		if err := pl.planFile(abs); err != nil {
			return err
		}
	}
	if err := pl.readSignatures(); err != nil {
		return err
	}
	pl.opts = ""
	if pl.fs == "xfs" && pl.plan.Driver == "overlay" {
		if pl.req.Host.XFSQuota {
			pl.opts = "prjquota"
		} else {
			pl.plan.Warnings = append(pl.plan.Warnings, "this kernel's XFS has no quota support (CONFIG_XFS_QUOTA): mounting without prjquota, so per-container size limits (--storage-opt size) are not available")
		}
	}
	if err := pl.planMkfs(ctx); err != nil {
		return err
	}
	if err := pl.planMount(); err != nil {
		return err
	}
	pl.planGrow()
	return pl.planPersist()
}
