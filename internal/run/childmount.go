package run

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// setupMounts builds the container's mount tree in the child's private
// mount namespace. Every target is resolved inside the root filesystem
// and mounted through its file descriptor, so no symlink in the image can
// redirect a mount onto the host.
func setupMounts(cfg *childConfig) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	if err := unix.Mount(cfg.Rootfs, cfg.Rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind-mounting the root filesystem onto itself: %w", err)
	}
	root, err := openRoot(cfg.Rootfs)
	if err != nil {
		return err
	}
	defer root.Close()
	steps := []func(*os.File, *childConfig) error{mountProc, mountDev, mountSys}
	for _, step := range steps {
		if err := step(root, cfg); err != nil {
			return err
		}
	}
	for _, m := range cfg.Mounts {
		if err := mountUser(root, m); err != nil {
			return fmt.Errorf("mounting %s: %w", m.Destination, err)
		}
	}
	return maskPaths(root, cfg.Masked, cfg.Readonly)
}

// mountAt opens (creating it when missing) dest inside root and calls fn
// with a path naming that exact file, for mount(2).
func mountAt(root *os.File, dest string, file bool, fn func(target string) error) error {
	if _, err := ensureInRoot(root, dest, file); err != nil {
		return err
	}
	f, err := openInRoot(root, dest, unix.O_PATH)
	if err != nil {
		return err
	}
	defer f.Close()
	return fn(fdPath(f))
}

func mountProc(root *os.File, _ *childConfig) error {
	return mountAt(root, "/proc", false, func(t string) error {
		err := unix.Mount("proc", t, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
		if err != nil {
			// A container that hides parts of its /proc may forbid a new
			// proc mount; the host's /proc is the fallback, as in Buildah.
			err = unix.Mount("/proc", t, "", unix.MS_BIND|unix.MS_REC, "")
		}
		if err != nil {
			return fmt.Errorf("mounting /proc: %w", err)
		}
		return nil
	})
}

// mountDev mounts a tmpfs on /dev with the default devices bound from the
// host, a private devpts, /dev/shm and /dev/mqueue.
func mountDev(root *os.File, cfg *childConfig) error {
	err := mountAt(root, "/dev", false, func(t string) error {
		return unix.Mount("tmpfs", t, "tmpfs", unix.MS_NOSUID|unix.MS_STRICTATIME, "mode=755,size=65536k")
	})
	if err != nil {
		return fmt.Errorf("mounting /dev: %w", err)
	}
	for _, d := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		err := mountAt(root, "/dev/"+d, true, func(t string) error {
			return unix.Mount("/dev/"+d, t, "", unix.MS_BIND, "")
		})
		if err != nil {
			return fmt.Errorf("binding /dev/%s: %w", d, err)
		}
	}
	dev, err := openInRoot(root, "/dev", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer dev.Close()
	links := [][2]string{{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
		{"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"}, {"/proc/kcore", "core"}}
	for _, l := range links {
		if err := unix.Symlinkat(l[0], int(dev.Fd()), l[1]); err != nil {
			return fmt.Errorf("creating /dev/%s: %w", l[1], err)
		}
	}
	subs := []specs.Mount{
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", shmSizeOption(cfg.ShmSize)}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
	}
	for _, m := range subs {
		if err := mountUser(root, m); err != nil && m.Type != "mqueue" {
			return fmt.Errorf("mounting %s: %w", m.Destination, err)
		}
	}
	return nil
}

// mountSys mounts a read-only sysfs, or binds the host's /sys read-only
// when sysfs cannot be mounted (the host network namespace in a container).
func mountSys(root *os.File, cfg *childConfig) error {
	const flags = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	err := mountAt(root, "/sys", false, func(t string) error {
		if err := unix.Mount("sysfs", t, "sysfs", flags, ""); err == nil {
			return nil
		}
		return unix.Mount("/sys", t, "", unix.MS_BIND|unix.MS_REC, "")
	})
	if err != nil {
		return fmt.Errorf("mounting /sys: %w", err)
	}
	return setMountAttr(root, "/sys", true, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
}

// setMountAttr sets attributes on the mount at dest (and, when recursive,
// every mount below it).
func setMountAttr(root *os.File, dest string, recursive bool, attr uint64) error {
	f, err := openInRoot(root, dest, unix.O_PATH)
	if err != nil {
		return err
	}
	defer f.Close()
	flags := unix.AT_EMPTY_PATH
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	err = unix.MountSetattr(int(f.Fd()), "", uint(flags), &unix.MountAttr{Attr_set: attr})
	if errors.Is(err, unix.ENOSYS) && attr&unix.MOUNT_ATTR_RDONLY != 0 {
		err = unix.Mount("", fdPath(f), "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, "")
	}
	if err != nil {
		return fmt.Errorf("setting mount attributes on %s: %w", dest, err)
	}
	return nil
}

var mountFlagOptions = map[string]struct {
	flag uintptr
	attr uint64
}{
	"ro":          {unix.MS_RDONLY, unix.MOUNT_ATTR_RDONLY},
	"nosuid":      {unix.MS_NOSUID, unix.MOUNT_ATTR_NOSUID},
	"nodev":       {unix.MS_NODEV, unix.MOUNT_ATTR_NODEV},
	"noexec":      {unix.MS_NOEXEC, unix.MOUNT_ATTR_NOEXEC},
	"strictatime": {unix.MS_STRICTATIME, 0},
}

var propagationOptions = map[string]uintptr{
	"private": unix.MS_PRIVATE, "rprivate": unix.MS_PRIVATE | unix.MS_REC,
	"shared": unix.MS_SHARED, "rshared": unix.MS_SHARED | unix.MS_REC,
	"slave": unix.MS_SLAVE, "rslave": unix.MS_SLAVE | unix.MS_REC,
}

// mountUser mounts one bind, tmpfs, devpts or mqueue mount.
func mountUser(root *os.File, m specs.Mount) error {
	var flags, prop uintptr
	var attr uint64
	var data []string
	recursive := false
	for _, o := range m.Options {
		switch {
		case o == "bind":
		case o == "rbind":
			recursive = true
		case o == "rw", o == "suid", o == "dev", o == "exec":
		case mountFlagOptions[o].flag != 0:
			flags |= mountFlagOptions[o].flag
			attr |= mountFlagOptions[o].attr
		case propagationOptions[o] != 0:
			prop = propagationOptions[o]
		default:
			data = append(data, o)
		}
	}
	dest := path.Clean("/" + m.Destination)
	if m.Type != "bind" {
		return mountAt(root, dest, false, func(t string) error {
			return unix.Mount(m.Source, t, m.Type, flags, strings.Join(data, ","))
		})
	}
	st, err := os.Stat(m.Source)
	if err != nil {
		return err
	}
	bindFlags := uintptr(unix.MS_BIND)
	if recursive {
		bindFlags |= unix.MS_REC
	}
	err = mountAt(root, dest, !st.IsDir(), func(t string) error {
		if err := unix.Mount(m.Source, t, "", bindFlags, ""); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	if attr != 0 {
		if err := setMountAttr(root, dest, recursive, attr); err != nil {
			return err
		}
	}
	if prop != 0 {
		return mountAt(root, dest, !st.IsDir(), func(t string) error {
			return unix.Mount("", t, "", prop, "")
		})
	}
	return nil
}

// maskPaths hides the masked paths (tmpfs or /dev/null over them) and
// makes the read-only paths read-only.
func maskPaths(root *os.File, masked, readonly []string) error {
	for _, p := range masked {
		f, err := openInRoot(root, p, unix.O_PATH)
		if err != nil {
			continue
		}
		st, err := f.Stat()
		if err == nil {
			if st.IsDir() {
				err = unix.Mount("tmpfs", fdPath(f), "tmpfs", unix.MS_RDONLY, "size=0")
			} else {
				err = unix.Mount("/dev/null", fdPath(f), "", unix.MS_BIND, "")
			}
		}
		f.Close()
		if err != nil {
			return fmt.Errorf("masking %s: %w", p, err)
		}
	}
	for _, p := range readonly {
		f, err := openInRoot(root, p, unix.O_PATH)
		if err != nil {
			continue
		}
		err = unix.Mount(fdPath(f), fdPath(f), "", unix.MS_BIND|unix.MS_REC, "")
		f.Close()
		if err == nil {
			err = setMountAttr(root, p, true, unix.MOUNT_ATTR_RDONLY)
		}
		if err != nil {
			return fmt.Errorf("making %s read-only: %w", p, err)
		}
	}
	return nil
}

// enterRoot makes the root filesystem the process's root: pivot_root with
// the old root detached, or, with noPivot, MS_MOVE and chroot.
func enterRoot(rootfs string, noPivot bool) error {
	if noPivot {
		if err := unix.Chdir(rootfs); err != nil {
			return err
		}
		if err := unix.Mount(rootfs, "/", "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("moving the root filesystem to /: %w", err)
		}
		if err := unix.Chroot("."); err != nil {
			return fmt.Errorf("chroot into the root filesystem: %w", err)
		}
		return unix.Chdir("/")
	}
	oldRoot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(oldRoot)
	if err := unix.Chdir(rootfs); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root into the root filesystem (try --no-pivot): %w", err)
	}
	if err := unix.Fchdir(oldRoot); err != nil {
		return err
	}
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return err
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the old root: %w", err)
	}
	return unix.Chdir("/")
}
