// Package overlay is the overlayfs storage driver: each snapshot's content
// is an overlay upper directory, a mount stacks a snapshot on its
// ancestors, and a container's writes become a layer by renaming its upper
// directory, never by copying.
package overlay

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/archive"
	"github.com/kiln-build/kiln/internal/digestio"
	"github.com/kiln-build/kiln/internal/idmap"
	"github.com/kiln-build/kiln/internal/store/driver"
)

func init() {
	driver.Register("overlay", New)
	driver.Register("overlay2", New)
}

// Driver is the overlay driver.
type Driver struct {
	layout    driver.Layout
	quotaSize uint64 // per-container limit in bytes (quota.go); 0 for none
}

var _ driver.Driver = (*Driver)(nil)

// New opens the overlay driver at o.Home, checking once that overlayfs
// mounts work on the backing filesystem.
func New(o driver.Options) (driver.Driver, error) {
	d := &Driver{layout: driver.Layout{Home: o.Home, Content: "diff", Logger: o.Logger}}
	for _, dir := range []string{o.Home, d.linkDir(), d.emptyDir()} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("creating overlay home: %w", err)
		}
	}
	if err := d.probe(); err != nil {
		return nil, err
	}
	var err error
	if d.quotaSize, err = quotaSize(o); err != nil {
		return nil, err
	}
	if err := checkQuota(o.Home, d.quotaSize); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Driver) linkDir() string  { return filepath.Join(d.layout.Home, "l") }
func (d *Driver) emptyDir() string { return filepath.Join(d.layout.Home, "empty") }

// probe mounts a tiny overlay once; the result is remembered in Home.
func (d *Driver) probe() error {
	ok := filepath.Join(d.layout.Home, ".probe-ok")
	if _, err := os.Stat(ok); err == nil {
		return nil
	}
	dir, err := os.MkdirTemp(d.layout.Home, ".probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, sub := range []string{"lower", "upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			return err
		}
	}
	opts := fmt.Sprintf("lowerdir=%s/lower,upperdir=%s/upper,workdir=%s/work", dir, dir, dir)
	if userXattr() {
		opts += ",userxattr"
	}
	if err := unix.Mount("overlay", filepath.Join(dir, "merged"), "overlay", 0, opts); err != nil {
		return fmt.Errorf("%w: overlay mount on %s: %v (use --storage-driver vfs, or a filesystem with d_type such as XFS ftype=1 or ext4)", driver.ErrUnsupported, d.layout.Home, err)
	}
	_ = unix.Unmount(filepath.Join(dir, "merged"), unix.MNT_DETACH)
	return os.WriteFile(ok, nil, 0o600)
}

// ParentAtMount implements driver.ParentAtMount: a snapshot's lower
// directories are needed only when it is mounted.
func (d *Driver) ParentAtMount() {}

// Name implements driver.Driver.
func (d *Driver) Name() string { return "overlay" }

// Home implements driver.Driver.
func (d *Driver) Home() string { return d.layout.Home }

// Create implements driver.Driver.
func (d *Driver) Create(ctx context.Context, id, parent string) error {
	if err := d.layout.Create(id, parent, nil); err != nil {
		return err
	}
	if err := d.recordQuota(id); err != nil {
		return err
	}
	return d.ensureLink(id)
}

// ensureLink gives the snapshot a short name under l/ so that long
// chains of lower directories fit in one mount's option string.
func (d *Driver) ensureLink(id string) error {
	linkFile := filepath.Join(d.layout.Dir(id), "link")
	if b, err := os.ReadFile(linkFile); err == nil {
		if _, err := os.Lstat(filepath.Join(d.linkDir(), string(b))); err == nil {
			return nil
		}
	}
	var buf [10]byte
	if _, err := rand.Read(buf[:]); err != nil {
		return err
	}
	short := strings.ToUpper(fmt.Sprintf("%x", buf[:])[:16])
	if err := os.Symlink(filepath.Join("..", id, "diff"), filepath.Join(d.linkDir(), short)); err != nil {
		return err
	}
	return digestio.WriteFileAtomic(linkFile, []byte(short), 0o600)
}

func (d *Driver) lowerPath(id string) (string, error) {
	b, err := os.ReadFile(filepath.Join(d.layout.Dir(id), "link"))
	if err != nil {
		return d.layout.ContentDir(id), nil
	}
	return filepath.Join(d.linkDir(), string(b)), nil
}

// ApplyDiff implements driver.Driver.
func (d *Driver) ApplyDiff(ctx context.Context, id string, r io.Reader) (int64, error) {
	if !d.layout.Exists(id) {
		return 0, fmt.Errorf("%w: %s", driver.ErrNotExist, id)
	}
	return archive.Apply(ctx, d.layout.ContentDir(id), r, archive.ApplyOptions{Overlay: true, Logger: d.layout.Logger})
}

func (d *Driver) mergedDir(id string) string { return filepath.Join(d.layout.Dir(id), "merged") }

// Mount implements driver.Driver.
func (d *Driver) Mount(ctx context.Context, id string, readOnly bool) (string, error) {
	chain, err := d.layout.Chain(id)
	if err != nil {
		return "", err
	}
	target := d.mergedDir(id)
	if err := os.MkdirAll(target, 0o755); err != nil {
		return "", err
	}
	if m, _ := d.Mounted(id); m {
		return target, nil
	}
	lowerIDs := chain[1:]
	if readOnly {
		lowerIDs = chain
	}
	var lowers []string
	for _, l := range lowerIDs {
		p, err := d.lowerPath(l)
		if err != nil {
			return "", err
		}
		lowers = append(lowers, p)
	}
	if len(lowers) < 2 && readOnly || len(lowers) == 0 {
		lowers = append(lowers, d.emptyDir())
	}
	if len(lowers) > maxLowers {
		return "", fmt.Errorf("mounting snapshot %s: %w: %d layers, and overlayfs stacks at most %d; commit the container with --squash, or build with --squash or --layers=false", id, driver.ErrTooDeep, len(lowers), maxLowers)
	}
	var upper, work string
	if !readOnly {
		if err := d.applyQuota(id); err != nil {
			return "", err
		}
		upper, work = d.layout.ContentDir(id), filepath.Join(d.layout.Dir(id), "work")
		if err := os.MkdirAll(work, 0o700); err != nil {
			return "", err
		}
	}
	if err := mountOverlay(target, lowers, upper, work); err != nil {
		return "", fmt.Errorf("mounting snapshot %s: %w", id, err)
	}
	// A private mount has no peers in the mount namespaces other processes
	// (a RUN step's runtime) copy from ours, so their use of the copy can
	// never make our unmount busy.
	if err := unix.Mount("", target, "", unix.MS_PRIVATE, ""); err != nil {
		_ = unix.Unmount(target, unix.MNT_DETACH)
		return "", fmt.Errorf("making snapshot %s's mount private: %w", id, err)
	}
	return target, nil
}

// maxLowers is overlayfs's own limit (OVL_MAX_STACK).
const maxLowers = 500

// userXattr reports whether overlay mounts take "userxattr": in a user
// namespace (a rootless kiln, Linux 5.11 and later) overlayfs cannot use
// its trusted.overlay.* attributes and keeps them as user.overlay.*
// instead, as Buildah and Podman mount it rootless. archive writes and
// reads opaque directories under the same name (archive.OpaqueXattr).
func userXattr() bool { return idmap.InUserNamespace() }

// mountOverlay mounts an overlay of lowers (topmost first) at target,
// writable when upper is set. Lower directories are given one by one
// through the mount API's "lowerdir+" (Linux 6.8 and later), so no page
// of mount options limits the depth; older kernels take the classic
// option string, which must then fit in a page.
func mountOverlay(target string, lowers []string, upper, work string) error {
	err := fsconfigMount(target, lowers, upper, work)
	if err == nil || !errors.Is(err, errNoLowerdirPlus) {
		return err
	}
	opts := "lowerdir=" + strings.Join(lowers, ":")
	flags := uintptr(0)
	if upper == "" {
		flags = unix.MS_RDONLY
	} else {
		opts += ",upperdir=" + upper + ",workdir=" + work
	}
	if userXattr() {
		opts += ",userxattr"
	}
	if len(opts) >= unix.Getpagesize() {
		return fmt.Errorf("%w: %d layers do not fit in one page of mount options on this kernel (Linux 6.8 mounts up to %d); commit with --squash", driver.ErrTooDeep, len(lowers), maxLowers)
	}
	return unix.Mount("overlay", target, "overlay", flags, opts)
}

// errNoLowerdirPlus: the kernel has no mount API or no "lowerdir+".
var errNoLowerdirPlus = errors.New("overlay lowerdir+ not supported")

func fsconfigMount(target string, lowers []string, upper, work string) error {
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("%w: fsopen: %v", errNoLowerdirPlus, err)
	}
	defer unix.Close(fd)
	// fsconfig takes strings of at most 255 bytes: each directory is
	// named by a descriptor's short /proc/self/fd path instead.
	set := func(key, dir string) error {
		dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("overlay %s %s: %w", key, dir, err)
		}
		defer unix.Close(dfd)
		if err := unix.FsconfigSetString(fd, key, fmt.Sprintf("/proc/self/fd/%d", dfd)); err != nil {
			return fmt.Errorf("overlay %s %s: %w", key, dir, err)
		}
		return nil
	}
	for i, l := range lowers {
		if err := set("lowerdir+", l); err != nil {
			if i == 0 && errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("%w: %v", errNoLowerdirPlus, err)
			}
			return err
		}
	}
	if userXattr() {
		if err := unix.FsconfigSetFlag(fd, "userxattr"); err != nil {
			return fmt.Errorf("overlay userxattr (Linux 5.11 and later mount overlay in a user namespace): %w", err)
		}
	}
	attrs := 0
	if upper == "" {
		attrs = unix.MOUNT_ATTR_RDONLY
	} else {
		if err := set("upperdir", upper); err != nil {
			return err
		}
		if err := set("workdir", work); err != nil {
			return err
		}
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fmt.Errorf("creating overlay: %w", err)
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, attrs)
	if err != nil {
		return fmt.Errorf("fsmount: %w", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attaching overlay at %s: %w", target, err)
	}
	return nil
}

// Unmount implements driver.Driver.
func (d *Driver) Unmount(ctx context.Context, id string) error {
	target := d.mergedDir(id)
	for {
		err := unix.Unmount(target, 0)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("unmounting snapshot %s: %w", id, err)
		}
	}
}

// Mounted implements driver.Driver: the merged directory sits on another
// device than its parent directory exactly when something is mounted.
func (d *Driver) Mounted(id string) (bool, error) {
	var a, b unix.Stat_t
	if err := unix.Lstat(d.mergedDir(id), &a); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, err
	}
	if err := unix.Lstat(d.layout.Dir(id), &b); err != nil {
		return false, err
	}
	return a.Dev != b.Dev, nil
}

// Diff implements driver.Driver by reading the upper directory alone.
func (d *Driver) Diff(ctx context.Context, id string, w io.Writer, opts driver.DiffOptions) error {
	if !d.layout.Exists(id) {
		return fmt.Errorf("%w: %s", driver.ErrNotExist, id)
	}
	return archive.WriteUpperDiff(ctx, w, d.layout.ContentDir(id), archive.DiffOptions{ModTimeUpperBound: opts.ModTimeUpperBound, Live: opts.Live})
}

// Promote implements driver.Driver: the upper directory is renamed into
// the new layer and the container gets a fresh, empty one.
func (d *Driver) Promote(ctx context.Context, from, to string) error {
	if m, _ := d.Mounted(from); m {
		return fmt.Errorf("promoting snapshot %s: it is mounted", from)
	}
	err := d.layout.Promote(from, to, func(_, fromContent string) error {
		return os.Mkdir(fromContent, 0o755)
	})
	if err != nil {
		return fmt.Errorf("promoting snapshot %s to %s: %w", from, to, err)
	}
	if err := os.RemoveAll(filepath.Join(d.layout.Dir(from), "work")); err != nil {
		return err
	}
	if err := d.renewQuota(from); err != nil {
		return err
	}
	// Short links name a snapshot's path, not its content: from keeps
	// its own, and to needs one.
	return d.ensureLink(to)
}

// Content implements driver.Driver.
func (d *Driver) Content(id string) (string, error) { return d.layout.ExistingContent(id) }

// Parent implements driver.Driver.
func (d *Driver) Parent(id string) (string, error) { return d.layout.Parent(id) }

// Exists implements driver.Driver.
func (d *Driver) Exists(id string) bool { return d.layout.Exists(id) }

// Remove implements driver.Driver.
func (d *Driver) Remove(ctx context.Context, id string) error {
	if err := d.Unmount(ctx, id); err != nil {
		return err
	}
	if b, err := os.ReadFile(filepath.Join(d.layout.Dir(id), "link")); err == nil && len(b) > 0 {
		_ = os.Remove(filepath.Join(d.linkDir(), string(b)))
	}
	d.dropQuota(id)
	return d.layout.Remove(id)
}

// Size implements driver.Driver.
func (d *Driver) Size(ctx context.Context, id string) (int64, error) {
	return driver.DirSize(d.layout.ContentDir(id))
}

// Status implements driver.Driver.
func (d *Driver) Status() [][2]string {
	var st unix.Statfs_t
	fsName := "unknown"
	if err := unix.Statfs(d.layout.Home, &st); err == nil {
		fsName = driver.FSTypeName(st.Type)
	}
	return append([][2]string{
		{"Backing Filesystem", fsName},
		{"Supports d_type", "true"},
		{"Native Overlay Diff", "true"},
		{"Using metacopy", "false"},
	}, d.quotaStatus()...)
}
