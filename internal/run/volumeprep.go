package run

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/kiln-build/kiln/internal/idmap"
)

// prepareVolumes does what volume options ask before the process starts:
// it gives the sources of mounts with OptionChown to the process's user
// and turns overlay volumes (ParseVolume's O) into overlay mounts, with
// a throwaway upper and work directory in RunDir unless the volume
// names its own. The caller's Options.Mounts are left as they are.
func (p *plan) prepareVolumes() error {
	p.o.Mounts = slices.Clone(p.o.Mounts)
	for i, m := range p.o.Mounts {
		chown := slices.Contains(m.Options, OptionChown)
		m.Options = slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return o == OptionChown })
		if chown {
			if err := chownTree(m.Source, int(p.user.UID), int(p.user.GID)); err != nil {
				return fmt.Errorf("volume %s: %w", m.Destination, err)
			}
		}
		if isOverlayVolume(m) {
			var err error
			if m, err = p.overlayMount(m, i, chown); err != nil {
				return fmt.Errorf("overlay volume %s: %w", m.Destination, err)
			}
		}
		p.o.Mounts[i] = m
	}
	return nil
}

// isOverlayVolume reports whether m is an overlay volume as ParseVolume
// makes them (its Source the lower directory), not an overlay mount
// ready for mount(2).
func isOverlayVolume(m specs.Mount) bool {
	return m.Type == "overlay" && m.Source != "overlay" &&
		!slices.ContainsFunc(m.Options, func(o string) bool { return strings.HasPrefix(o, "lowerdir=") })
}

// overlayMount is the overlay mount of volume m, the n-th mount: its
// source the lower layer, its upper directory made with the source's
// mode and owner, as Buildah makes it (and given to the process's user
// too with chown).
func (p *plan) overlayMount(m specs.Mount, n int, chown bool) (specs.Mount, error) {
	st, err := os.Stat(m.Source)
	if err != nil {
		return m, fmt.Errorf("%w: %w", ErrBadMount, err)
	}
	if !st.IsDir() {
		return m, fmt.Errorf("%s is not a directory: %w", m.Source, ErrBadMount)
	}
	var upper, work string
	var rest []string
	for _, o := range m.Options {
		switch k, v, _ := strings.Cut(o, "="); k {
		case "upperdir":
			upper = v
		case "workdir":
			work = v
		default:
			rest = append(rest, o)
		}
	}
	if upper == "" {
		dir := filepath.Join(p.o.RunDir, "overlay-"+p.id)
		if !slices.Contains(p.runFiles, dir) {
			p.runFiles = append(p.runFiles, dir)
		}
		upper = filepath.Join(dir, strconv.Itoa(n), "upper")
		work = filepath.Join(dir, strconv.Itoa(n), "work")
	}
	for _, d := range []string{upper, work} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return m, err
		}
	}
	if err := os.Chmod(upper, st.Mode().Perm()); err != nil {
		return m, err
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		if err := os.Lchown(upper, int(sys.Uid), int(sys.Gid)); err != nil {
			return m, err
		}
	}
	if chown {
		for _, d := range []string{upper, work} {
			if err := chownTree(d, int(p.user.UID), int(p.user.GID)); err != nil {
				return m, err
			}
		}
	}
	opts := []string{"lowerdir=" + strings.ReplaceAll(m.Source, ":", `\:`), "upperdir=" + upper, "workdir=" + work}
	if idmap.InUserNamespace() {
		opts = append(opts, "userxattr")
	}
	return specs.Mount{Destination: m.Destination, Type: "overlay", Source: "overlay", Options: append(opts, rest...)}, nil
}

// systemDirs are host directories a volume's U may not chown, as
// Buildah (containers/common's chown) refuses them.
var systemDirs = []string{"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/media",
	"/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var"}

// chownTree gives dir and everything under it (symlinks themselves, not
// their targets) to uid:gid; a system directory is refused.
func chownTree(dir string, uid, gid int) error {
	resolved, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	if slices.Contains(systemDirs, filepath.Clean(resolved)) {
		return fmt.Errorf("chowning host path %q is not allowed. You can manually `chown -R %d:%d %s`: %w", dir, uid, gid, dir, ErrBadMount)
	}
	return filepath.WalkDir(resolved, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if sys, ok := info.Sys().(*syscall.Stat_t); ok && int(sys.Uid) == uid && int(sys.Gid) == gid {
			return nil
		}
		return os.Lchown(p, uid, gid)
	})
}
