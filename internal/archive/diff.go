package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	ctrarchive "github.com/containerd/containerd/v2/pkg/archive"
	"golang.org/x/sys/unix"
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
		if v, _ := getxattr(path, "trusted.overlay.opaque"); v == "y" {
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
// own trusted.overlay.* excepted) and whole-second times.
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
		if name == "" || strings.HasPrefix(name, "trusted.overlay.") {
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
	// the opaque xattr) instead of removing files: for applying into an
	// overlay lower/upper directory.
	Overlay bool
}

// Apply applies a layer tar (any compression) into root and returns the
// number of bytes of file content written. Entries can never land outside
// root: "..", absolute names and symlinks are resolved inside it.
func Apply(ctx context.Context, root string, r io.Reader, opts ApplyOptions) (int64, error) {
	rc, _, err := Decompress(r)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	var ao []ctrarchive.ApplyOpt
	if opts.Overlay {
		ao = append(ao, ctrarchive.WithConvertWhiteout(ctrarchive.OverlayConvertWhiteout))
	}
	n, err := ctrarchive.Apply(ctx, root, rc, ao...)
	if err != nil {
		return n, fmt.Errorf("applying layer into %s: %w", root, err)
	}
	// Drain the trailing padding so a digest computed over r is complete.
	_, _ = io.Copy(io.Discard, rc)
	return n, nil
}
