package run

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// In-root path resolution. Every path a process or an image controls is
// resolved with openat2(RESOLVE_IN_ROOT), so a symlink or ".." in the root
// filesystem can never lead outside it, and mounts go onto the opened
// file descriptor (/proc/self/fd/N), never onto a path that could change.

// openRoot opens dir as the anchor for in-root resolution.
func openRoot(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return os.NewFile(uintptr(fd), dir), nil
}

// openInRoot opens p (absolute or relative, interpreted inside root) with
// flags, resolving symlinks as if root were "/". RESOLVE_NO_XDEV is not
// used, so mount points inside the root are crossed.
func openInRoot(root *os.File, p string, flags int) (*os.File, error) {
	rel := strings.TrimLeft(path.Clean("/"+p), "/")
	if rel == "" {
		rel = "."
	}
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	for {
		fd, err := unix.Openat2(int(root.Fd()), rel, &how)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open in root", Path: "/" + rel, Err: err}
		}
		return os.NewFile(uintptr(fd), path.Join(root.Name(), rel)), nil
	}
}

// readFileInRoot reads the regular file p inside root.
func readFileInRoot(root *os.File, p string) ([]byte, error) {
	f, err := openInRoot(root, p, unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("reading %s: not a regular file", p)
	}
	b := make([]byte, 0, st.Size())
	buf := make([]byte, 32*1024)
	for {
		n, err := f.Read(buf)
		b = append(b, buf[:n]...)
		if err != nil || n == 0 {
			return b, nil
		}
		if len(b) > 16<<20 {
			return nil, fmt.Errorf("reading %s: larger than 16 MiB", p)
		}
	}
}

// ensureInRoot makes sure p exists inside root, creating missing parent
// directories and, when file is true, an empty regular file as the last
// component (a directory otherwise). It returns the in-root paths it
// created, outermost first, so the caller can remove them again.
func ensureInRoot(root *os.File, p string, file bool) (created []string, err error) {
	return ensureInRootDepth(root, p, file, 0)
}

func ensureInRootDepth(root *os.File, p string, file bool, depth int) (created []string, err error) {
	if depth > 40 {
		return nil, fmt.Errorf("creating %s in the root filesystem: too many levels of symbolic links", p)
	}
	clean := path.Clean("/" + p)
	if clean == "/" {
		return nil, nil
	}
	parts := strings.Split(strings.TrimPrefix(clean, "/"), "/")
	for i := range parts {
		cur := "/" + strings.Join(parts[:i+1], "/")
		last := i == len(parts)-1
		f, err := openInRoot(root, cur, unix.O_PATH)
		if err == nil {
			f.Close()
			continue
		}
		if !errors.Is(err, unix.ENOENT) {
			return created, err
		}
		parent, err := openInRoot(root, path.Dir(cur), unix.O_PATH|unix.O_DIRECTORY)
		if err != nil {
			return created, err
		}
		if last && file {
			var fd int
			fd, err = unix.Openat(int(parent.Fd()), parts[i], unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
			if err == nil {
				unix.Close(fd)
			}
		} else {
			err = unix.Mkdirat(int(parent.Fd()), parts[i], 0o755)
		}
		if err == unix.EEXIST {
			// A dangling symlink: create what it points to, inside the root.
			target, lerr := readlinkat(parent, parts[i])
			parent.Close()
			if lerr != nil {
				return created, fmt.Errorf("creating %s in the root filesystem: %w", cur, lerr)
			}
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(cur), target)
			}
			rest := path.Join(append([]string{target}, parts[i+1:]...)...)
			more, err := ensureInRootDepth(root, rest, file, depth+1)
			return append(created, more...), err
		}
		parent.Close()
		if err != nil {
			return created, fmt.Errorf("creating %s in the root filesystem: %w", cur, err)
		}
		created = append(created, cur)
	}
	return created, nil
}

// removeInRoot removes the in-root paths in reverse order. A directory that
// is no longer empty is kept. It is best effort and returns the first error.
func removeInRoot(root *os.File, paths []string) error {
	var first error
	for i := len(paths) - 1; i >= 0; i-- {
		p := paths[i]
		parent, err := openInRoot(root, path.Dir(p), unix.O_PATH|unix.O_DIRECTORY)
		if err != nil {
			first = cmpErr(first, err)
			continue
		}
		base := path.Base(p)
		var st unix.Stat_t
		err = unix.Fstatat(int(parent.Fd()), base, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == nil {
			flags := 0
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				flags = unix.AT_REMOVEDIR
			}
			err = unix.Unlinkat(int(parent.Fd()), base, flags)
			if err == unix.ENOTEMPTY || err == unix.EEXIST {
				err = nil
			}
		}
		if err != nil && err != unix.ENOENT {
			first = cmpErr(first, fmt.Errorf("removing %s from the root filesystem: %w", p, err))
		}
		parent.Close()
	}
	return first
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// fdPath is the magic-link path that names an open file, for mount(2).
func fdPath(f *os.File) string {
	return fmt.Sprintf("/proc/self/fd/%d", f.Fd())
}

func readlinkat(dir *os.File, name string) (string, error) {
	buf := make([]byte, 4096)
	n, err := unix.Readlinkat(int(dir.Fd()), name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}
