package dockerfile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	cfs "github.com/containerd/continuity/fs"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/archive"
	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/store"
)

// What a streamed COPY reads: a directory on the host (the build
// context, a named context, staged heredocs and downloads), or the tree
// of a stage or image seen through a store.PathView, which reads layers
// that exist only as blobs without unpacking them. Both answer the
// questions internal/container's copier asks of a mounted root, with the
// same semantics: paths resolve inside the root (cfs.RootPath), globs are
// filepath.Glob's, walks are filepath.WalkDir's.

// srcInfo is what the copier needs to know of a source file.
type srcInfo struct {
	name     string
	mode     fs.FileMode
	size     int64
	mtime    time.Time
	uid, gid int
	nlink    uint64
	dev, ino uint64
	ctime    int64 // host files: for the file hash cache
}

func (i srcInfo) isDir() bool { return i.mode.IsDir() }

// srcFS is a tree sources are read from; paths are absolute in its
// namespace (host paths for a host directory, "/..." in a view).
type srcFS interface {
	rootPath(root, p string) (string, error)
	glob(pattern string) ([]string, error)
	lstat(p string) (srcInfo, error)
	stat(p string) (srcInfo, error)
	readDir(p string) ([]string, error)
	readlink(p string) (string, error)
	open(ctx context.Context, p string) (io.ReadCloser, error)
	// onHost reports whether paths are host paths (whose digests the
	// build context remembers).
	onHost() bool
}

// hostFS reads host directories; what it stats, the build context keeps
// for the step's cache key (buildContext.info).
type hostFS struct{ bc *buildContext }

func (hostFS) rootPath(root, p string) (string, error) { return cfs.RootPath(root, p) }
func (hostFS) glob(pattern string) ([]string, error)   { return filepath.Glob(pattern) }
func (hostFS) readlink(p string) (string, error)       { return os.Readlink(p) }
func (hostFS) onHost() bool                            { return true }

func (h hostFS) lstat(p string) (srcInfo, error) {
	fi, ok := h.bc.takenInfo(p)
	if !ok {
		var err error
		if fi, err = os.Lstat(p); err != nil {
			return srcInfo{}, err
		}
		if h.bc != nil {
			h.bc.noteInfo(p, fi)
		}
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return srcInfo{}, fmt.Errorf("%s: no stat data", p)
	}
	return hostInfo(p, st), nil
}

func (hostFS) stat(p string) (srcInfo, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		return srcInfo{}, &fs.PathError{Op: "stat", Path: p, Err: err}
	}
	return hostInfo(p, &st), nil
}

func (h hostFS) readDir(p string) ([]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	sort.Strings(names)
	if err == nil && h.bc != nil {
		h.bc.statAhead(p, names)
	}
	return names, err
}

// statAhead stats the entries of directory dir on several goroutines,
// for the walk that lstats them next (a COPY of many small files spends
// its walk in lstat).
func (bc *buildContext) statAhead(dir string, names []string) {
	const workers = 4
	if len(names) < 64 {
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(names); i += workers {
				p := filepath.Join(dir, names[i])
				if fi, err := os.Lstat(p); err == nil {
					bc.noteInfo(p, fi)
				}
			}
		}()
	}
	wg.Wait()
}

func (hostFS) open(_ context.Context, p string) (io.ReadCloser, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	return fdReader(fd), nil
}

// fdReader reads a raw descriptor: no poller registration, as the
// copier's copyFile does, for speed with many small files.
type fdReader int

func (f fdReader) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(int(f), p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 && len(p) > 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

func (f fdReader) Close() error { return unix.Close(int(f)) }

func hostInfo(p string, st *syscall.Stat_t) srcInfo {
	return srcInfo{name: filepath.Base(p), mode: archive.FileMode(st.Mode), size: st.Size, mtime: time.Unix(st.Mtim.Unix()),
		uid: int(st.Uid), gid: int(st.Gid), nlink: uint64(st.Nlink), dev: uint64(st.Dev), ino: st.Ino, ctime: st.Ctim.Nano()}
}

// viewFS reads a stage's or image's tree through a store.PathView; its
// root is "/". Symlinks on the way to a path resolve inside the tree.
type viewFS struct{ v *store.PathView }

func (f viewFS) onHost() bool { return false }

func (f viewFS) lstat(p string) (srcInfo, error) {
	p = path.Clean("/" + p)
	e, err := f.v.Lstat(p)
	if err != nil && p != "/" {
		// A directory on the way may be a symlink: resolve it in the tree.
		dir, rerr := resolveLinks(f.entry, "/", path.Dir(p))
		if rerr == nil && dir != path.Dir(p) {
			return f.lstat(path.Join(dir, path.Base(p)))
		}
	}
	if err != nil {
		return srcInfo{}, err
	}
	return viewInfo(path.Base(p), e), nil
}

func (f viewFS) stat(p string) (srcInfo, error) {
	full, err := resolveLinks(f.entry, "/", p)
	if err != nil {
		return srcInfo{}, err
	}
	return f.lstat(full)
}

func (f viewFS) rootPath(root, p string) (string, error) { return resolveLinks(f.entry, root, p) }

func (f viewFS) readlink(p string) (string, error) {
	i, err := f.lstat(p)
	if err != nil {
		return "", err
	}
	e, _ := f.v.Lstat(path.Clean("/" + p))
	if i.mode&fs.ModeSymlink == 0 {
		return "", &fs.PathError{Op: "readlink", Path: p, Err: syscall.EINVAL}
	}
	return e.Linkname, nil
}

func (f viewFS) readDir(p string) ([]string, error) {
	full, err := resolveLinks(f.entry, "/", p)
	if err != nil {
		return nil, err
	}
	return f.v.ReadDir(full)
}

func (f viewFS) open(ctx context.Context, p string) (io.ReadCloser, error) {
	return f.v.Open(ctx, p)
}

// entry answers resolveLinks' questions.
func (f viewFS) entry(p string) (fs.FileMode, string, error) {
	e, err := f.v.Lstat(p)
	return e.Mode, e.Linkname, err
}

// glob is filepath.Glob over the view.
func (f viewFS) glob(pattern string) ([]string, error) {
	if _, err := filepath.Match(pattern, ""); err != nil {
		return nil, err
	}
	if !container.HasGlobMeta(pattern) {
		if _, err := f.lstat(pattern); err != nil {
			return nil, nil
		}
		return []string{pattern}, nil
	}
	dir, file := filepath.Split(pattern)
	switch dir {
	case "":
		dir = "."
	case "/":
	default:
		dir = dir[:len(dir)-1]
	}
	if !container.HasGlobMeta(dir) {
		return f.globDir(dir, file, nil)
	}
	if dir == pattern {
		return nil, filepath.ErrBadPattern
	}
	m, err := f.glob(dir)
	if err != nil {
		return nil, err
	}
	var matches []string
	for _, d := range m {
		if matches, err = f.globDir(d, file, matches); err != nil {
			return nil, err
		}
	}
	return matches, nil
}

func (f viewFS) globDir(dir, pattern string, matches []string) ([]string, error) {
	fi, err := f.stat(dir)
	if err != nil || !fi.isDir() {
		return matches, nil
	}
	names, err := f.readDir(dir)
	if err != nil {
		return matches, nil
	}
	for _, n := range names {
		ok, err := filepath.Match(pattern, n)
		if err != nil {
			return matches, err
		}
		if ok {
			matches = append(matches, filepath.Join(dir, n))
		}
	}
	return matches, nil
}

func viewInfo(name string, e store.PathEntry) srcInfo {
	return srcInfo{name: name, mode: e.Mode, size: e.Size, mtime: e.ModTime, uid: e.UID, gid: e.GID,
		nlink: e.Nlink, dev: e.Dev, ino: e.Ino}
}

// errTooManyLinks: a path resolves through more than 255 symlinks.
var errTooManyLinks = errors.New("too many links")

// lookupFunc describes a path of a tree without following a final
// symlink: its mode and, for a symlink, its target. A path that does not
// exist wraps fs.ErrNotExist.
type lookupFunc func(p string) (fs.FileMode, string, error)

// resolveLinks is cfs.RootPath over any tree: it joins p with root,
// evaluating every symlink on the way (the last component too) inside
// root, and returns the resolved path; parts that do not exist are kept
// as they are.
func resolveLinks(lookup lookupFunc, root, p string) (string, error) {
	if p == "" {
		return root, nil
	}
	var walked int
	for {
		i := walked
		np, err := walkLinks(lookup, root, p, &walked)
		if err != nil {
			return "", err
		}
		p = np
		if i == walked {
			np = filepath.Join("/", np)
			if p == np {
				return filepath.Join(root, np), nil
			}
			p = np
		}
	}
}

func walkLink(lookup lookupFunc, root, p string, walked *int) (string, bool, error) {
	if *walked > 255 {
		return "", false, errTooManyLinks
	}
	p = filepath.Join("/", p)
	if p == "/" {
		return p, false, nil
	}
	mode, target, err := lookup(filepath.Join(root, p))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return p, false, nil
		}
		return "", false, err
	}
	if mode&fs.ModeSymlink == 0 {
		return p, false, nil
	}
	*walked++
	return target, true, nil
}

func walkLinks(lookup lookupFunc, root, p string, walked *int) (string, error) {
	switch dir, file := filepath.Split(p); {
	case dir == "":
		np, _, err := walkLink(lookup, root, file, walked)
		return np, err
	case file == "":
		if dir[len(dir)-1] == '/' {
			if dir == "/" {
				return dir, nil
			}
			return walkLinks(lookup, root, dir[:len(dir)-1], walked)
		}
		np, _, err := walkLink(lookup, root, dir, walked)
		return np, err
	default:
		nd, err := walkLinks(lookup, root, dir, walked)
		if err != nil {
			return "", err
		}
		np, isLink, err := walkLink(lookup, root, filepath.Join(nd, file), walked)
		if err != nil {
			return "", err
		}
		if !isLink {
			return np, nil
		}
		if filepath.IsAbs(np) {
			return np, nil
		}
		return filepath.Join(nd, np), nil
	}
}
