package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	cfs "github.com/containerd/continuity/fs"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/archive"
)

// CopyOptions describe a copy or add into the container.
type CopyOptions struct {
	// Sources are paths (globs allowed) relative to ContextDir, or inside
	// From's root when From is set; with Add or FetchURLs, also http(s)
	// URLs.
	Sources []string
	// Dest is a path in the container, relative to its working directory.
	Dest       string
	ContextDir string
	// Chown is "user[:group]" resolved in the container; "" means 0:0
	// (ownership is kept when copying From another root).
	Chown string
	// Chmod is an octal mode applied to everything copied; "" keeps modes.
	Chmod string
	// FromRoot is the mounted root of another container or image.
	FromRoot string
	// Add extracts local tar archives and fetches URLs.
	Add bool
	// FetchURLs fetches http(s) sources without Add's extraction, as
	// Buildah's copy does (a Dockerfile's COPY takes no URL).
	FetchURLs bool
	// Confine resolves Sources inside ContextDir as FromRoot sources are
	// resolved inside FromRoot: ".." and symlinks never lead out of it.
	// An absolute source that names a path under ContextDir is taken
	// relative to it, as Buildah's copy --contextdir takes it.
	Confine bool
	// Exclude, when set, is asked about every file and directory a source
	// expands to: top is the source directory being walked (or the base
	// of a glob), hostPath the entry; skipTree skips a directory's subtree.
	Exclude func(top, hostPath string, isDir bool) (skip, skipTree bool)
}

// ErrSourceMissing is wrapped when a copy source does not exist.
var ErrSourceMissing = errors.New("no such file or directory")

// Copy copies files into the container's root filesystem. Every target
// path resolves inside the root: a symlink in the container can never
// make a copy land outside it.
func (c *Container) Copy(ctx context.Context, o CopyOptions) error {
	if len(o.Sources) == 0 {
		return fmt.Errorf("copy needs at least one source")
	}
	var mode *os.FileMode
	if o.Chmod != "" {
		m, err := strconv.ParseUint(o.Chmod, 8, 32)
		if err != nil || m > 0o7777 {
			return fmt.Errorf("bad --chmod %q: want an octal mode such as 755", o.Chmod)
		}
		fm := os.FileMode(m)
		mode = &fm
	}
	return c.withMount(ctx, func(root string) error {
		owner, err := c.resolveChown(root, o)
		if err != nil {
			return err
		}
		srcs, err := expandSources(o)
		if err != nil {
			return err
		}
		dest := o.Dest
		if !path.IsAbs(dest) {
			dest = path.Join("/", c.State.Config.Config.WorkingDir, dest)
		}
		intoDir := strings.HasSuffix(o.Dest, "/") || len(srcs) > 1
		if fi, err := statIn(root, dest); err == nil && fi.IsDir() {
			intoDir = true
		}
		cp := copier{root: root, owner: owner, mode: mode, add: o.Add, exclude: o.Exclude, dirs: map[string]string{}}
		for _, s := range srcs {
			if err := cp.copySource(ctx, s.path, s.name, dest, intoDir); err != nil {
				return err
			}
		}
		return nil
	})
}

func statIn(root, p string) (os.FileInfo, error) {
	full, err := cfs.RootPath(root, p)
	if err != nil {
		return nil, err
	}
	return os.Stat(full)
}

// source is a copy source after globbing: its path, resolved inside the
// root, and the name it is copied under into a directory (the name the
// glob matched, not the name a symlink led to, as in Docker and Buildah).
type source struct {
	path, name string
}

// sourceName is the name match m of source s is copied under: the name
// s gives, or the glob's match.
func sourceName(s, m string) string {
	if base := filepath.Base(filepath.Clean(s)); !HasGlobMeta(base) {
		return base
	}
	return filepath.Base(m)
}

// HasGlobMeta reports whether p has a glob pattern's special characters.
func HasGlobMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// expandSources resolves globs; a source that matches nothing is an
// error, except a pattern when another source matched (Buildah's rule:
// COPY *.foo *.txt dir/ copies the .txt files).
func expandSources(o CopyOptions) ([]source, error) {
	var out []source
	var unmatched error
	for _, s := range o.Sources {
		if (o.Add || o.FetchURLs) && IsURL(s) {
			out = append(out, source{path: s})
			continue
		}
		base := o.ContextDir
		if o.FromRoot != "" {
			base = o.FromRoot
		}
		confined := o.FromRoot != "" || o.Confine
		if o.FromRoot == "" && o.Confine && filepath.IsAbs(s) && base != "" {
			if rel, err := filepath.Rel(base, s); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
				s = rel
			}
		}
		var full string
		if confined {
			p, err := cfs.RootPath(base, s)
			if err != nil {
				return nil, err
			}
			full = p
		} else if filepath.IsAbs(s) || base == "" {
			full = s
		} else {
			full = filepath.Join(base, s)
		}
		matches, err := filepath.Glob(full)
		if err != nil {
			return nil, fmt.Errorf("bad pattern %q: %w", s, err)
		}
		if len(matches) == 0 && HasGlobMeta(s) {
			if unmatched == nil {
				unmatched = fmt.Errorf("copy source %q: %w", s, ErrSourceMissing)
			}
			continue
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("copy source %q: %w", s, ErrSourceMissing)
		}
		before := len(out)
		for _, m := range matches {
			name := sourceName(s, m)
			if confined {
				// A match may itself be a symlink: resolve it in the root too.
				rel, err := filepath.Rel(base, m)
				if err != nil {
					return nil, err
				}
				if m, err = cfs.RootPath(base, rel); err != nil {
					return nil, err
				}
			}
			if o.Exclude != nil {
				if fi, err := os.Lstat(m); err == nil {
					if skip, _ := o.Exclude(base, m, fi.IsDir()); skip && m != filepath.Clean(base) {
						continue
					}
				}
			}
			out = append(out, source{path: m, name: name})
		}
		if len(out) == before {
			return nil, fmt.Errorf("copy source %q: %w", s, ErrSourceMissing)
		}
	}
	if len(out) == 0 && unmatched != nil {
		return nil, unmatched
	}
	return out, nil
}

type ownership struct {
	uid, gid int
	keep     bool
}

func (c *Container) resolveChown(root string, o CopyOptions) (ownership, error) {
	if o.Chown == "" {
		return ownership{keep: o.FromRoot != ""}, nil
	}
	uid, gid, err := lookupUser(root, o.Chown)
	if err != nil {
		return ownership{}, fmt.Errorf("looking up UID/GID for %q: %w", o.Chown, err)
	}
	return ownership{uid: uid, gid: gid}, nil
}

type copier struct {
	root    string
	owner   ownership
	mode    *os.FileMode
	add     bool
	exclude func(string, string, bool) (bool, bool)
	dirs    map[string]string // container directory -> resolved host path
	// links maps a source file with more than one link to its first copy
	// in this source, so that its other links are linked to that copy.
	links map[fileID]linkedCopy
}

// fileID names an inode.
type fileID struct{ dev, ino uint64 }

// linkedCopy is the first copy of a hard-linked source file: its host
// path and its own inode, to check that it is still that file.
type linkedCopy struct {
	path string
	id   fileID
}

// copySource copies one source. Files of the source that are hard links
// of one inode become hard links of one copy, as in BuildKit (fsutil's
// copy, one per source) and Buildah: the layer then holds them as a file
// and link entries.
func (cp copier) copySource(ctx context.Context, src, name, dest string, intoDir bool) error {
	cp.links = map[fileID]linkedCopy{}
	if IsURL(src) {
		return cp.fetch(ctx, src, dest, intoDir)
	}
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("copy source %q: %w", src, err)
	}
	// A source that is itself a symlink is followed, as Buildah does:
	// its target's content is copied under the link's name (a source in
	// a container or image was resolved inside its root already).
	if lfi, err := os.Lstat(src); err == nil && lfi.Mode()&os.ModeSymlink != 0 {
		if src, err = filepath.EvalSymlinks(src); err != nil {
			return fmt.Errorf("copy source %q: %w", src, err)
		}
	}
	if fi.IsDir() {
		return cp.copyTree(ctx, src, dest)
	}
	if cp.add {
		if ok, err := cp.extract(ctx, src, dest); ok || err != nil {
			return err
		}
	}
	target := dest
	if intoDir {
		target = path.Join(dest, name)
	}
	return cp.copyEntry(src, target, fi)
}

// extract unpacks src into dest when it is a (compressed) tar archive.
func (cp copier) extract(ctx context.Context, src, dest string) (bool, error) {
	f, err := os.Open(src)
	if err != nil {
		return false, err
	}
	defer f.Close()
	rc, _, err := archive.Decompress(f)
	if err != nil {
		return false, nil
	}
	head := make([]byte, 512)
	n, _ := io.ReadFull(rc, head)
	rc.Close()
	if n < 512 || string(head[257:262]) != "ustar" {
		return false, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return true, err
	}
	dir, err := cp.mkdirIn(dest)
	if err != nil {
		return true, err
	}
	_, err = archive.Apply(ctx, dir, f, archive.ApplyOptions{})
	return true, err
}

func (cp copier) copyTree(ctx context.Context, src, dest string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			// A directory copies its contents: the destination keeps its
			// own metadata, or is made as any missing parent is.
			_, err := cp.mkdirIn(dest)
			return err
		}
		if cp.exclude != nil {
			if skip, tree := cp.exclude(src, p, d.IsDir()); tree && d.IsDir() {
				return filepath.SkipDir
			} else if skip {
				return nil
			}
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		return cp.copyEntry(p, path.Join(dest, filepath.ToSlash(rel)), fi)
	})
}

// mkdirIn makes directory p (in the container) and its parents, and
// returns its resolved host path.
func (cp copier) mkdirIn(p string) (string, error) {
	p = path.Clean("/" + p)
	if full, ok := cp.dirs[p]; ok {
		return full, nil
	}
	if p != "/" {
		if _, err := cp.mkdirIn(path.Dir(p)); err != nil {
			return "", err
		}
	}
	full, err := cfs.RootPath(cp.root, p)
	if err != nil {
		return "", err
	}
	fi, err := os.Lstat(full)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := cp.makeDirs(full); err != nil {
			return "", fmt.Errorf("creating %s in the container: %w", p, err)
		}
	case err != nil:
		return "", err
	case !fi.IsDir():
		return "", fmt.Errorf("creating %s in the container: %w", p, syscall.ENOTDIR)
	}
	// A directory stays one for the rest of the copy (copyEntry replaces
	// only non-directories), so its resolution can be reused.
	cp.dirs[p] = full
	return full, nil
}

// makeDirs makes full (resolved inside the root, so free of symlinks
// where it does not exist yet) and its missing parents. The directories
// a copy creates belong to --chown's owner, as in Docker and Buildah.
func (cp copier) makeDirs(full string) error {
	var missing []string
	for d := full; d != cp.root && len(d) > len(cp.root); d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		}
		missing = append(missing, d)
	}
	if err := os.MkdirAll(full, 0o755); err != nil {
		return err
	}
	if cp.owner.keep {
		return nil
	}
	for _, d := range missing {
		if err := os.Lchown(d, cp.owner.uid, cp.owner.gid); err != nil {
			return err
		}
	}
	return nil
}

// copyEntry copies one file, directory or symlink to target (a path in
// the container), resolving target's parent inside the root.
func (cp copier) copyEntry(src, target string, fi os.FileInfo) error {
	parent, err := cp.mkdirIn(path.Dir(target))
	if err != nil {
		return err
	}
	full := filepath.Join(parent, path.Base(target))
	if fi.IsDir() {
		// A directory may land on a symlink in the container: follow it
		// inside the root, never on the host.
		if full, err = cp.mkdirIn(target); err != nil {
			return err
		}
		if err := cp.finish(full, fi); err != nil {
			return err
		}
		return os.Chmod(full, cp.modeFor(fi)) // after chown, which may clear mode bits
	}
	// Replace whatever is there, and never write through a symlink.
	if old, err := os.Lstat(full); err == nil && !old.IsDir() {
		if err := os.Remove(full); err != nil {
			return err
		}
	}
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		link, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(link, full); err != nil {
			return err
		}
	case fi.Mode().IsRegular():
		return cp.copyRegular(src, full, fi)
	default:
		return fmt.Errorf("copy source %s: unsupported file type %s", src, fi.Mode().Type())
	}
	return cp.finish(full, fi)
}

func (cp copier) modeFor(fi os.FileInfo) os.FileMode {
	if cp.mode != nil {
		return *cp.mode
	}
	return fi.Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)
}

// ids is the owner a copied entry gets.
func (cp copier) ids(fi os.FileInfo) (int, int) {
	if cp.owner.keep {
		return fileOwner(fi)
	}
	return cp.owner.uid, cp.owner.gid
}

func (cp copier) finish(full string, fi os.FileInfo) error {
	uid, gid := cp.ids(fi)
	if err := os.Lchown(full, uid, gid); err != nil {
		return err
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		return nil
	}
	return os.Chtimes(full, fi.ModTime(), fi.ModTime())
}

// copyRegular copies regular file src to full, or links full to the
// copy already made of another link of src's inode.
func (cp copier) copyRegular(src, full string, fi os.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Nlink < 2 || cp.links == nil {
		return cp.copyFile(src, full, fi)
	}
	key := fileID{dev: uint64(st.Dev), ino: st.Ino}
	if first, ok := cp.links[key]; ok && sameFile(first) {
		if err := os.Link(first.path, full); err != nil {
			return fmt.Errorf("linking %s to %s: %w", full, first.path, err)
		}
		return nil
	}
	if err := cp.copyFile(src, full, fi); err != nil {
		return err
	}
	var made unix.Stat_t
	if err := unix.Lstat(full, &made); err != nil {
		return &os.PathError{Op: "lstat", Path: full, Err: err}
	}
	cp.links[key] = linkedCopy{path: full, id: fileID{dev: uint64(made.Dev), ino: made.Ino}}
	return nil
}

// sameFile reports whether c.path is still the copy recorded in c (a
// later entry of the copy may have replaced it).
func sameFile(c linkedCopy) bool {
	var st unix.Stat_t
	return unix.Lstat(c.path, &st) == nil && uint64(st.Dev) == c.id.dev && st.Ino == c.id.ino
}

// copyBuffers are the buffers file copies read through.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 128<<10); return &b }}

// copyFile makes dst a copy of regular file src with its owner, mode and
// modification time, through raw descriptors: a COPY of many small files
// spends its time in system calls, so it makes as few as it can (no
// poller registration, no copy_file_range that overlay refuses, owner and
// mode set on the open descriptor, chown before chmod so that set-id bits
// survive).
func (cp copier) copyFile(src, dst string, fi os.FileInfo) error {
	in, err := unix.Open(src, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: src, Err: err}
	}
	defer unix.Close(in)
	out, err := unix.Open(dst, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return &os.PathError{Op: "create", Path: dst, Err: err}
	}
	err = copyFD(out, in)
	if err == nil {
		uid, gid := cp.ids(fi)
		err = unix.Fchown(out, uid, gid)
	}
	if err == nil {
		err = unix.Fchmod(out, unixMode(cp.modeFor(fi)))
	}
	if cerr := unix.Close(out); err == nil {
		err = cerr
	}
	if err != nil {
		return &os.PathError{Op: "copy", Path: dst, Err: err}
	}
	t := unix.NsecToTimespec(fi.ModTime().UnixNano())
	return unix.UtimesNanoAt(unix.AT_FDCWD, dst, []unix.Timespec{t, t}, unix.AT_SYMLINK_NOFOLLOW)
}

// copyFD copies everything from descriptor in to descriptor out.
func copyFD(out, in int) error {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	for {
		n, err := unix.Read(in, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			return err
		}
		for w := buf[:n]; len(w) > 0; {
			m, err := unix.Write(out, w)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return err
			}
			w = w[m:]
		}
	}
}

// unixMode is an os.FileMode's permission and set-id/sticky bits as
// chmod(2) takes them.
func unixMode(m os.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		u |= unix.S_ISUID
	}
	if m&os.ModeSetgid != 0 {
		u |= unix.S_ISGID
	}
	if m&os.ModeSticky != 0 {
		u |= unix.S_ISVTX
	}
	return u
}

// fetch downloads a URL into the container, as ADD does: mode 0600,
// the modification time from Last-Modified.
func (cp copier) fetch(ctx context.Context, src, dest string, intoDir bool) error {
	tmp, err := os.MkdirTemp("", "kiln-add-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	file, err := Download(ctx, src, tmp, "")
	if err != nil {
		return err
	}
	target := dest
	if intoDir || strings.HasSuffix(dest, "/") {
		target = path.Join(dest, filepath.Base(file))
	}
	fi, err := os.Lstat(file)
	if err != nil {
		return err
	}
	return cp.copyEntry(file, target, fi)
}
