package archive

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	ctrarchive "github.com/containerd/containerd/v2/pkg/archive"
	cfs "github.com/containerd/continuity/fs"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/idmap"
)

// Whiteout names as the OCI layer format spells them.
const (
	WhiteoutPrefix = ".wh."
	WhiteoutOpaque = ".wh..wh..opq"
)

// DiffOptions shape the tar a diff produces.
type DiffOptions struct {
	// ModTimeUpperBound, when set, clamps every entry's modification time
	// (reproducible output with --timestamp or SOURCE_DATE_EPOCH).
	ModTimeUpperBound *time.Time
	// Live says the directory may change while it is read (a process runs
	// in the container): entries that vanish meanwhile are left out
	// instead of failing the diff.
	Live bool
}

// WriteUpperDiff writes the layer tar of an overlay upper directory to w,
// reading only that directory: overlay whiteouts (0/0 character devices)
// become ".wh." entries and opaque directories gain a ".wh..wh..opq"
// entry. The output is deterministic for a given directory, so the same
// tree always has the same diff ID.
func WriteUpperDiff(ctx context.Context, w io.Writer, upper string, opts DiffOptions) error {
	tw := tar.NewWriter(w)
	links := map[uint64]string{}
	err := filepath.WalkDir(upper, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return vanished(err, opts)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(upper, path)
		if err != nil || rel == "." {
			return err
		}
		return vanished(writeUpperEntry(tw, path, filepath.ToSlash(rel), links, opts), opts)
	})
	if err != nil {
		return fmt.Errorf("writing diff of %s: %w", upper, err)
	}
	return tw.Close()
}

// vanished drops a not-found error in a live diff: the entry went away
// while the directory was read.
func vanished(err error, opts DiffOptions) error {
	if opts.Live && errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func writeUpperEntry(tw *tar.Writer, path, rel string, links map[uint64]string, opts DiffOptions) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode()&os.ModeCharDevice != 0 && st.Rdev == 0 {
		dir, base := filepath.Split(rel)
		return tw.WriteHeader(whiteoutHeader(dir + WhiteoutPrefix + base))
	}
	hdr, err := headerFor(path, rel, fi, st, opts)
	if err != nil {
		return err
	}
	if fi.Mode().IsRegular() && st.Nlink > 1 {
		if first, ok := links[st.Ino]; ok {
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			return tw.WriteHeader(hdr)
		}
		links[st.Ino] = rel
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if fi.IsDir() {
		if v, _ := getxattr(path, OpaqueXattr()); v == "y" {
			return tw.WriteHeader(whiteoutHeader(rel + "/" + WhiteoutOpaque))
		}
		return nil
	}
	if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 {
		return copyFile(tw, path, hdr.Size)
	}
	return nil
}

func copyFile(w io.Writer, path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, size))
	if err == nil && n != size {
		err = fmt.Errorf("%s changed size while being read", path)
	}
	return err
}

func whiteoutHeader(name string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0, ModTime: time.Unix(0, 0).UTC(), Format: tar.FormatPAX}
}

// headerFor builds the tar header of one file, with its xattrs (overlay's
// own trusted.overlay.*, or user.overlay.* in a user namespace, excepted)
// and whole-second times.
func headerFor(path, rel string, fi os.FileInfo, st *syscall.Stat_t, opts DiffOptions) (*tar.Header, error) {
	link := ""
	if fi.Mode()&os.ModeSymlink != 0 {
		var err error
		if link, err = os.Readlink(path); err != nil {
			return nil, err
		}
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return nil, err
	}
	hdr.Name = rel
	if fi.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
	hdr.Uname, hdr.Gname = "", ""
	hdr.ModTime = fi.ModTime().Truncate(time.Second).UTC()
	if b := opts.ModTimeUpperBound; b != nil && hdr.ModTime.After(*b) {
		hdr.ModTime = b.UTC()
	}
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
	hdr.Format = tar.FormatPAX
	if fi.Mode()&(os.ModeDevice|os.ModeCharDevice) != 0 {
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	}
	xattrs, err := listXattrs(path)
	if err != nil {
		return nil, err
	}
	for k, v := range xattrs {
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+k] = v
	}
	return hdr, nil
}

func listXattrs(path string) (map[string]string, error) {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(path, buf)
	if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
		return nil, nil
	}
	if errors.Is(err, unix.ERANGE) {
		sz, err2 := unix.Llistxattr(path, nil)
		if err2 != nil {
			return nil, err2
		}
		buf = make([]byte, sz)
		n, err = unix.Llistxattr(path, buf)
	}
	if err != nil {
		return nil, fmt.Errorf("listing xattrs of %s: %w", path, err)
	}
	var out map[string]string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" || OverlayXattr(name) {
			continue
		}
		v, err := getxattr(path, name)
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = v
	}
	return out, nil
}

func getxattr(path, name string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if err != nil {
			if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP) {
				return "", nil
			}
			return "", fmt.Errorf("reading xattr %s of %s: %w", name, path, err)
		}
		return string(buf[:n]), nil
	}
}

// WriteTreeDiff writes the layer tar of the changes that turn the tree
// lower into the tree upper ("" lower means empty), comparing both.
func WriteTreeDiff(ctx context.Context, w io.Writer, lower, upper string, opts DiffOptions) error {
	if lower == "" {
		empty, err := os.MkdirTemp("", "kiln-empty-")
		if err != nil {
			return err
		}
		defer os.Remove(empty)
		lower = empty
	}
	var wo []ctrarchive.WriteDiffOpt
	if opts.ModTimeUpperBound != nil {
		wo = append(wo, ctrarchive.WithSourceDateEpoch(opts.ModTimeUpperBound))
	}
	if err := ctrarchive.WriteDiff(ctx, w, lower, upper, wo...); err != nil {
		return fmt.Errorf("writing diff of %s against %s: %w", upper, lower, err)
	}
	return nil
}

// ApplyOptions shape how a layer is applied.
type ApplyOptions struct {
	// Overlay writes whiteouts as overlay does (0/0 character devices and
	// the opaque xattr, OpaqueXattr) instead of removing files: for
	// applying into an overlay lower/upper directory.
	Overlay bool
	// Logger receives notes (device nodes a user namespace cannot
	// create); nil discards them.
	Logger *slog.Logger
}

const userOverlayPrefix = "user.overlay."

// OverlayXattr reports whether an extended attribute of a file in an
// overlay upper directory is overlayfs's own, not the file's:
// trusted.overlay.*, and in a user namespace (where kiln mounts overlay
// with "userxattr") user.overlay.*.
func OverlayXattr(name string) bool {
	return strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, userOverlayPrefix) && idmap.InUserNamespace()
}

// OpaqueXattr is the attribute that marks an overlay directory opaque:
// trusted.overlay.opaque, or in a user namespace, where kiln mounts
// overlay with "userxattr" (trusted.* needs CAP_SYS_ADMIN in the initial
// namespace), user.overlay.opaque.
func OpaqueXattr() string {
	if idmap.InUserNamespace() {
		return userOverlayPrefix + "opaque"
	}
	return "trusted.overlay.opaque"
}

// overlayWhiteout is containerd's OverlayConvertWhiteout with the opaque
// attribute OpaqueXattr names.
func overlayWhiteout(hdr *tar.Header, path string) (bool, error) {
	dir, base := filepath.Split(path)
	if base == WhiteoutOpaque {
		return false, unix.Setxattr(dir, OpaqueXattr(), []byte{'y'}, 0)
	}
	if name, ok := strings.CutPrefix(base, WhiteoutPrefix); ok {
		p := filepath.Join(dir, name)
		if err := unix.Mknod(p, unix.S_IFCHR, 0); err != nil {
			return false, err
		}
		return false, os.Chown(p, hdr.Uid, hdr.Gid)
	}
	return true, nil
}

// ErrLayerRefused is wrapped by the errors of layers Apply refuses before
// writing what they ask for: file content beyond the free space of the
// filesystem (those errors also wrap syscall.ENOSPC), a directory repeated
// with different metadata again and again, or data after the end of the
// archive.
var ErrLayerRefused = errors.New("layer refused")

const (
	// maxTrailing bounds what may follow the end-of-archive blocks (tar
	// pads to its record size, 10 KiB by default): more is a
	// decompression bomb, never read to its end.
	maxTrailing = 1 << 20
	// maxDirRepeats bounds how often one directory may appear with
	// different metadata; identical repeats (some tools write them) are
	// skipped. Each header applied is kept until the end for its mtime.
	maxDirRepeats = 16
)

// Apply applies a layer tar (any compression) into root and returns the
// number of bytes of file content written. Entries can never land outside
// root: "..", absolute names and symlinks are resolved inside it. Memory
// is bounded whatever the stream claims, and a layer whose files claim
// more than the filesystem has free is refused before they are written.
func Apply(ctx context.Context, root string, r io.Reader, opts ApplyOptions) (int64, error) {
	g, err := newApplyGuard(root)
	if err != nil {
		return 0, err
	}
	if idmap.InUserNamespace() {
		g.userns = true
		defer g.noteDevices(root, opts.Logger)
	}
	rc, _, err := Decompress(r)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	ao := []ctrarchive.ApplyOpt{ctrarchive.WithFilter(g.filter)}
	if opts.Overlay {
		ao = append(ao, ctrarchive.WithConvertWhiteout(overlayWhiteout))
	}
	n, err := ctrarchive.Apply(ctx, root, rc, ao...)
	if err != nil {
		return n, fmt.Errorf("applying layer into %s: %w", root, err)
	}
	// Read the trailing padding so a digest computed over r is complete.
	if t, err := io.CopyN(io.Discard, rc, maxTrailing+1); t > maxTrailing {
		return n, fmt.Errorf("applying layer into %s: %w: more than %d bytes after the end of the archive", root, ErrLayerRefused, maxTrailing)
	} else if err != nil && err != io.EOF {
		return n, fmt.Errorf("applying layer into %s: %w", root, err)
	}
	return n, nil
}

// applyGuard filters the entries of one Apply: it bounds the content they
// claim by the free space and skips repeated identical directories.
type applyGuard struct {
	root    string
	free    int64 // bytes available when Apply started
	claimed int64
	dirs    map[string]dirSeen // by resolved path
	// userns: Apply runs in a user namespace, which cannot create device
	// nodes (devices counts those skipped, the first named) nor own files
	// by IDs it does not map.
	userns      bool
	devices     int
	firstDevice string
}

// noteDevices tells logger about the device nodes skipped.
func (g *applyGuard) noteDevices(root string, logger *slog.Logger) {
	if g.devices > 0 && logger != nil {
		logger.Warn("a user namespace cannot create device nodes: the layer's were left out, as Buildah does rootless",
			"into", root, "count", g.devices, "first", g.firstDevice)
	}
}

type dirSeen struct {
	meta [32]byte
	n    int
}

func newApplyGuard(root string) (*applyGuard, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		return nil, fmt.Errorf("measuring free space of %s: %w", root, err)
	}
	return &applyGuard{root: filepath.Clean(root), free: int64(st.Bavail) * st.Bsize, dirs: map[string]dirSeen{}}, nil
}

// filter runs before an entry is applied (its name already cleaned).
func (g *applyGuard) filter(hdr *tar.Header) (bool, error) {
	if g.userns {
		if hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock {
			if g.devices++; g.devices == 1 {
				g.firstDevice = hdr.Name
			}
			return false, nil
		}
		if err := idmap.CheckOwner(fmt.Sprintf("%q in the layer", hdr.Name), hdr.Uid, hdr.Gid); err != nil {
			return false, err
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return g.dir(hdr)
	case tar.TypeSymlink, tar.TypeLink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo, tar.TypeXGlobalHeader:
		return true, nil // no content
	}
	if hdr.Size < 0 || hdr.Size > g.free-g.claimed {
		return false, fmt.Errorf("%w: %q claims %d bytes, more than the %d bytes free: %w", ErrLayerRefused, hdr.Name, hdr.Size, g.free-g.claimed, syscall.ENOSPC)
	}
	g.claimed += hdr.Size
	return true, nil
}

// dir skips a directory entry identical to the last one applied at the
// same place (while a directory is still there), and refuses one place
// given different metadata more than maxDirRepeats times.
func (g *applyGuard) dir(hdr *tar.Header) (bool, error) {
	parent, base := filepath.Split(hdr.Name)
	pp, err := cfs.RootPath(g.root, parent)
	if err != nil {
		return true, nil // Apply reports it
	}
	path := filepath.Join(pp, filepath.Join("/", base)) // as Apply resolves it
	meta := dirMeta(hdr)
	seen, ok := g.dirs[path]
	if ok && seen.meta == meta {
		if fi, err := os.Lstat(path); err == nil && fi.IsDir() {
			return false, nil
		}
	}
	if seen.n >= maxDirRepeats {
		return false, fmt.Errorf("%w: directory %q appears more than %d times with different metadata", ErrLayerRefused, hdr.Name, maxDirRepeats)
	}
	g.dirs[path] = dirSeen{meta: meta, n: seen.n + 1}
	return true, nil
}

// dirMeta digests what applying a directory header sets.
func dirMeta(hdr *tar.Header) [32]byte {
	h := sha256.New()
	fmt.Fprintf(h, "%o %d %d %d %d\x00", hdr.Mode, hdr.Uid, hdr.Gid, hdr.ModTime.UnixNano(), hdr.AccessTime.UnixNano())
	for _, k := range slices.Sorted(maps.Keys(hdr.PAXRecords)) {
		fmt.Fprintf(h, "%s=%s\x00", k, hdr.PAXRecords[k])
	}
	return [32]byte(h.Sum(nil))
}
