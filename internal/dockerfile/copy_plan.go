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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kiln-build/kiln/internal/archive"
	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/idmap"
	"github.com/kiln-build/kiln/internal/store"
)

// A streamed COPY works out, without a container, what internal/container's
// copier would write into an overlay container's upper directory — the
// same entries with the same metadata — and then writes that directory's
// layer tar as archive.WriteUpperDiff would, straight from the sources.
// The tree below the copy is read through a store.PathView.
//
// The copier's semantics are followed step for step (copy.go: Copy,
// expandSources, copySource, copyTree, mkdirIn, makeDirs, copyEntry,
// copyRegular); so are overlayfs's: a directory the copy creates an entry
// in is copied up with its metadata and gets the time of the copy as its
// modification time, its parents keep theirs. Whatever this does not
// follow (a source that is not a file, directory or symlink; ADD of an
// archive; a directory with a default ACL) makes the planner give up with
// errNoStream, and the step runs in a container as before.

// errNoStream: the step must run in a container.
var errNoStream = errors.New("copy needs a container")

// unode is an entry of the virtual upper directory.
type unode struct {
	mode     fs.FileMode // type, permission, set-id and sticky bits
	uid, gid int
	mtime    time.Time
	touched  bool // an entry was made in this directory since its time was set
	fresh    bool // a directory the copy made: nothing below shows through
	xattrs   map[string]string
	link     string
	kids     map[string]*unode
	file     *ufile // regular files: the inode, shared by hard links
}

// ufile is a regular file's inode in the upper directory.
type ufile struct {
	mode     fs.FileMode
	uid, gid int
	mtime    time.Time
	size     int64
	src      srcFS
	path     string
	info     srcInfo
}

// upper is the virtual container: the view below and the upper
// directory the copy fills.
type upper struct {
	lower *store.PathView
	root  *unode
	dirs  map[string]*unode // directories of the upper directory, by path
	now   time.Time
	umask fs.FileMode
	euid  int
	egid  int
}

func newUpper(lower *store.PathView, now time.Time) *upper {
	root := &unode{mode: fs.ModeDir | 0o755, kids: map[string]*unode{}}
	euid, egid := idmap.EffectiveIDs()
	return &upper{lower: lower, root: root, dirs: map[string]*unode{"/": root}, now: now,
		umask: processUmask(), euid: euid, egid: egid}
}

// dentry is what the merged tree holds at a path.
type dentry struct {
	mode  fs.FileMode
	link  string
	node  *unode // in the upper directory, else nil
	lower store.PathEntry
}

// lstat looks p (absolute, clean, every parent a directory) up in the
// upper directory, then below.
func (u *upper) lstat(p string) (dentry, error) {
	p = path.Clean("/" + p)
	if dir, ok := u.dirs[path.Dir(p)]; ok && p != "/" {
		// A directory stays one: its entries are all there is to look at.
		if kid, ok := dir.kids[path.Base(p)]; ok {
			return dentry{mode: kid.mode, link: kid.link, node: kid}, nil
		}
		if dir.fresh {
			return dentry{}, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
		}
		e, err := u.lower.Lstat(p)
		if err != nil {
			return dentry{}, err
		}
		return dentry{mode: e.Mode, link: e.Linkname, lower: e}, nil
	}
	n := u.root
	rest := strings.TrimPrefix(p, "/")
	for rest != "" {
		name, tail, _ := strings.Cut(rest, "/")
		kid, ok := n.kids[name]
		if !ok {
			break
		}
		if tail != "" && !kid.mode.IsDir() {
			return dentry{}, &fs.PathError{Op: "lstat", Path: p, Err: syscall.ENOTDIR}
		}
		n, rest = kid, tail
	}
	if rest == "" {
		return dentry{mode: n.mode, link: n.link, node: n}, nil
	}
	if n.fresh {
		return dentry{}, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
	}
	e, err := u.lower.Lstat(p)
	if err != nil {
		return dentry{}, err
	}
	return dentry{mode: e.Mode, link: e.Linkname, lower: e}, nil
}

func (u *upper) lookup(p string) (fs.FileMode, string, error) {
	d, err := u.lstat(p)
	return d.mode, d.link, err
}

// rootPath resolves p inside the merged tree, as cfs.RootPath does in a
// mounted container.
func (u *upper) rootPath(p string) (string, error) { return resolveLinks(u.lookup, "/", p) }

// dirNode returns the upper node of existing directory p (resolved),
// copying it and its parents up from below as overlayfs does: with their
// metadata and times.
func (u *upper) dirNode(p string) (*unode, error) {
	p = path.Clean("/" + p)
	if n, ok := u.dirs[p]; ok {
		return n, nil
	}
	n := u.root
	cur := "/"
	for _, name := range strings.Split(strings.TrimPrefix(path.Clean("/"+p), "/"), "/") {
		if name == "" {
			continue
		}
		cur = path.Join(cur, name)
		kid, ok := n.kids[name]
		if !ok {
			e, err := u.lower.Lstat(cur)
			if err != nil {
				return nil, err
			}
			if !e.IsDir() {
				return nil, &fs.PathError{Op: "mkdir", Path: cur, Err: syscall.ENOTDIR}
			}
			if _, ok := e.Xattrs["system.posix_acl_default"]; ok {
				return nil, fmt.Errorf("%w: %s has a default ACL", errNoStream, cur)
			}
			kid = &unode{mode: e.Mode, uid: e.UID, gid: e.GID, mtime: e.ModTime, xattrs: e.Xattrs, kids: map[string]*unode{}}
			n.kids[name] = kid
		}
		if !kid.mode.IsDir() {
			return nil, &fs.PathError{Op: "mkdir", Path: cur, Err: syscall.ENOTDIR}
		}
		u.dirs[cur] = kid
		n = kid
	}
	return n, nil
}

// add puts node at p (its parent an existing directory), replacing what
// the upper directory had there.
func (u *upper) add(p string, node *unode) error {
	parent, err := u.dirNode(path.Dir(p))
	if err != nil {
		return err
	}
	parent.kids[path.Base(p)] = node
	parent.touched = true
	return nil
}

// remove removes non-directory p.
func (u *upper) remove(p string) error {
	parent, err := u.dirNode(path.Dir(p))
	if err != nil {
		return err
	}
	delete(parent.kids, path.Base(p))
	parent.touched = true
	// Below, the name is hidden by what is made there next.
	return nil
}

// mkdir makes directory p as os.Mkdir(p, 0o755) does as this process: the
// umask applies, a set-group-ID parent gives its group and the bit.
func (u *upper) mkdir(p string) error {
	parent, err := u.dirNode(path.Dir(p))
	if err != nil {
		return err
	}
	n := &unode{mode: fs.ModeDir | 0o755&^u.umask, uid: u.euid, gid: u.egid, mtime: u.now, touched: true, fresh: true, kids: map[string]*unode{}}
	if parent.mode&fs.ModeSetgid != 0 {
		n.mode |= fs.ModeSetgid
		n.gid = parent.gid
	}
	parent.kids[path.Base(p)] = n
	parent.touched = true
	u.dirs[path.Clean("/"+p)] = n
	return nil
}

// readFile reads a regular file of the merged tree (resolving p).
func (u *upper) open(ctx context.Context, p string) (io.ReadCloser, error) {
	full, err := u.rootPath(p)
	if err != nil {
		return nil, err
	}
	d, err := u.lstat(full)
	if err != nil {
		return nil, err
	}
	if d.node != nil {
		if d.node.file == nil {
			return nil, &fs.PathError{Op: "open", Path: p, Err: syscall.EISDIR}
		}
		return d.node.file.src.open(ctx, d.node.file.path)
	}
	return u.lower.Open(ctx, full)
}

// copyOp is one copier run: container.CopyOptions for a streamed copy.
type copyOp struct {
	src     srcFS
	root    string // the source root (a host directory, or "/" in a view)
	sources []string
	dest    string // as written, relative to workdir
	workdir string
	chown   string
	other   bool // another stage, image or staged file: owners are kept without --chown
	owner   ownership
	mode    *fs.FileMode
	add     bool
	exclude func(top, p string, isDir bool) (bool, bool)
}

// ownership is who copied entries belong to; keep keeps the source's.
type ownership struct {
	uid, gid int
	keep     bool
}

// planner is the copier of one op on the virtual upper directory.
type planner struct {
	u     *upper
	op    copyOp
	dirs  map[string]string // container directory -> resolved path
	links map[[2]uint64]linked
}

type linked struct {
	path string
	node *unode
}

// copy runs op: container.Copy without a container.
func (u *upper) copy(ctx context.Context, op copyOp) error {
	if len(op.sources) == 0 {
		return fmt.Errorf("copy needs at least one source")
	}
	srcs, err := op.expand()
	if err != nil {
		return err
	}
	dest := op.dest
	if !path.IsAbs(dest) {
		dest = path.Join("/", op.workdir, dest)
	}
	intoDir := strings.HasSuffix(op.dest, "/") || len(srcs) > 1
	if full, err := u.rootPath(dest); err == nil {
		if d, err := u.lstat(full); err == nil && d.mode.IsDir() {
			intoDir = true
		}
	}
	p := &planner{u: u, op: op, dirs: map[string]string{}}
	for _, s := range srcs {
		if err := p.copySource(ctx, s.path, s.name, dest, intoDir); err != nil {
			return err
		}
	}
	return nil
}

// matched is a source after globbing (container's source): its resolved
// path and the name it is copied under into a directory.
type matched struct {
	path, name string
}

// expand resolves the sources' globs in the source root (expandSources,
// whose rule for a pattern that matches nothing it follows).
func (op copyOp) expand() ([]matched, error) {
	var out []matched
	unmatched := ""
	for _, s := range op.sources {
		full, err := op.src.rootPath(op.root, s)
		if err != nil {
			return nil, err
		}
		matches, err := op.src.glob(full)
		if err != nil {
			return nil, fmt.Errorf("bad pattern %q: %w", s, err)
		}
		if len(matches) == 0 && container.HasGlobMeta(s) {
			if unmatched == "" {
				unmatched = s
			}
			continue
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("%w: copy source %q matches nothing", errNoStream, s)
		}
		before := len(out)
		for _, m := range matches {
			name := filepath.Base(m)
			if base := filepath.Base(filepath.Clean(s)); !container.HasGlobMeta(base) {
				name = base // the name given, not the one a symlink leads to
			}
			rel, err := filepath.Rel(op.root, m)
			if err != nil {
				return nil, err
			}
			if m, err = op.src.rootPath(op.root, rel); err != nil {
				return nil, err
			}
			if op.exclude != nil {
				if fi, err := op.src.lstat(m); err == nil {
					if skip, _ := op.exclude(op.root, m, fi.isDir()); skip && m != filepath.Clean(op.root) {
						continue
					}
				}
			}
			out = append(out, matched{path: m, name: name})
		}
		if len(out) == before {
			return nil, fmt.Errorf("%w: copy source %q matches nothing", errNoStream, s)
		}
	}
	if len(out) == 0 && unmatched != "" {
		return nil, fmt.Errorf("%w: copy source %q matches nothing", errNoStream, unmatched)
	}
	return out, nil
}

func (p *planner) copySource(ctx context.Context, src, name, dest string, intoDir bool) error {
	p.links = map[[2]uint64]linked{}
	fi, err := p.op.src.stat(src)
	if err != nil {
		return fmt.Errorf("%w: copy source %q: %w", errNoStream, src, err)
	}
	if fi.isDir() {
		return p.copyTree(ctx, src, dest)
	}
	if p.op.add && fi.mode.IsRegular() {
		if ok, err := p.isArchive(ctx, src); err != nil || ok {
			// ADD unpacks archives: into the container (archive.Apply).
			return errors.Join(errNoStream, err)
		}
	}
	target := dest
	if intoDir {
		target = path.Join(dest, name)
	}
	return p.copyEntry(src, target, fi)
}

// isArchive reports whether ADD would unpack src (copier.extract).
func (p *planner) isArchive(ctx context.Context, src string) (bool, error) {
	f, err := p.op.src.open(ctx, src)
	if err != nil {
		return false, err
	}
	defer f.Close()
	rc, _, err := archive.Decompress(f)
	if err != nil {
		return false, nil
	}
	defer rc.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(rc, head)
	return n == 512 && string(head[257:262]) == "ustar", nil
}

func (p *planner) copyTree(ctx context.Context, src, dest string) error {
	if _, err := p.mkdirIn(dest); err != nil {
		return err
	}
	return p.walk(ctx, src, src, dest)
}

// walk visits the entries below directory dir in filepath.WalkDir's
// order (lexical, a directory before its contents).
func (p *planner) walk(ctx context.Context, top, dir, dest string) error {
	names, err := p.op.src.readDir(dir)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		sp := filepath.Join(dir, name)
		fi, err := p.op.src.lstat(sp)
		if err != nil {
			return err
		}
		if p.op.exclude != nil {
			if skip, tree := p.op.exclude(top, sp, fi.isDir()); tree && fi.isDir() {
				continue
			} else if skip {
				if fi.isDir() {
					if err := p.walk(ctx, top, sp, dest); err != nil {
						return err
					}
				}
				continue
			}
		}
		rel, _ := filepath.Rel(top, sp)
		if err := p.copyEntry(sp, path.Join(dest, filepath.ToSlash(rel)), fi); err != nil {
			return err
		}
		if fi.isDir() {
			if err := p.walk(ctx, top, sp, dest); err != nil {
				return err
			}
		}
	}
	return nil
}

// mkdirIn makes directory p and its parents (resolving symlinks) and
// returns its resolved path.
func (p *planner) mkdirIn(dir string) (string, error) {
	dir = path.Clean("/" + dir)
	if full, ok := p.dirs[dir]; ok {
		return full, nil
	}
	if dir != "/" {
		if _, err := p.mkdirIn(path.Dir(dir)); err != nil {
			return "", err
		}
	}
	full, err := p.u.rootPath(dir)
	if err != nil {
		return "", err
	}
	d, err := p.u.lstat(full)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := p.makeDirs(full); err != nil {
			return "", fmt.Errorf("creating %s in the container: %w", dir, err)
		}
	case err != nil:
		return "", err
	case !d.mode.IsDir():
		return "", fmt.Errorf("creating %s in the container: %w", dir, syscall.ENOTDIR)
	}
	p.dirs[dir] = full
	return full, nil
}

// makeDirs makes full and its missing parents (os.MkdirAll), owned by
// the copy's owner.
func (p *planner) makeDirs(full string) error {
	var missing []string
	for d := full; d != "/"; d = path.Dir(d) {
		if _, err := p.u.lstat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		missing = append(missing, d)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := p.u.mkdir(missing[i]); err != nil {
			return err
		}
	}
	if p.op.owner.keep {
		return nil
	}
	for _, d := range missing {
		n, err := p.u.dirNode(d)
		if err != nil {
			return err
		}
		n.uid, n.gid = p.op.owner.uid, p.op.owner.gid
	}
	return nil
}

func (p *planner) modeFor(fi srcInfo) fs.FileMode {
	if p.op.mode != nil {
		return *p.op.mode
	}
	return fi.mode & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
}

func (p *planner) ids(fi srcInfo) (int, int) {
	if p.op.owner.keep {
		return fi.uid, fi.gid
	}
	return p.op.owner.uid, p.op.owner.gid
}

// copyEntry copies one source entry to target (container.copyEntry).
func (p *planner) copyEntry(src, target string, fi srcInfo) error {
	parent, err := p.mkdirIn(path.Dir(target))
	if err != nil {
		return err
	}
	full := path.Join(parent, path.Base(target))
	if fi.isDir() {
		if full, err = p.mkdirIn(target); err != nil {
			return err
		}
		n, err := p.u.dirNode(full)
		if err != nil {
			return err
		}
		n.uid, n.gid = p.ids(fi)
		n.mtime, n.touched = fi.mtime, false
		n.mode = fs.ModeDir | p.modeFor(fi)
		return nil
	}
	old, err := p.u.lstat(full)
	switch {
	case err == nil && old.mode.IsDir():
		return fmt.Errorf("%w: %s is a directory in the container", errNoStream, full)
	case err == nil:
		if err := p.u.remove(full); err != nil {
			return err
		}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	uid, gid := p.ids(fi)
	switch {
	case fi.mode&fs.ModeSymlink != 0:
		link, err := p.op.src.readlink(src)
		if err != nil {
			return err
		}
		return p.u.add(full, &unode{mode: fs.ModeSymlink | 0o777, uid: uid, gid: gid, mtime: p.u.now, link: link})
	case fi.mode.IsRegular():
		return p.copyRegular(src, full, fi)
	default:
		return fmt.Errorf("%w: copy source %s: unsupported file type %s", errNoStream, src, fi.mode.Type())
	}
}

// copyRegular copies a regular file, or links it to the copy already made
// of another link of its inode in this source.
func (p *planner) copyRegular(src, full string, fi srcInfo) error {
	key := [2]uint64{fi.dev, fi.ino}
	if fi.nlink >= 2 {
		if first, ok := p.links[key]; ok {
			if d, err := p.u.lstat(first.path); err == nil && d.node == first.node {
				return p.u.add(full, &unode{mode: first.node.mode, file: first.node.file})
			}
		}
	}
	uid, gid := p.ids(fi)
	f := &ufile{mode: p.modeFor(fi), uid: uid, gid: gid, mtime: fi.mtime, size: fi.size, src: p.op.src, path: src, info: fi}
	n := &unode{mode: f.mode, file: f}
	if err := p.u.add(full, n); err != nil {
		return err
	}
	if fi.nlink >= 2 {
		p.links[key] = linked{path: full, node: n}
	}
	return nil
}

// resolveOwner resolves --chown in the merged tree, as the copier does
// in a container's root.
func (u *upper) resolveOwner(ctx context.Context, chown string, fromOther bool) (ownership, error) {
	if chown == "" {
		return ownership{keep: fromOther}, nil
	}
	uid, gid, err := container.LookupUser(func(db string) (io.ReadCloser, error) { return u.open(ctx, db) }, chown)
	if err != nil {
		return ownership{}, fmt.Errorf("looking up UID/GID for %q: %w", chown, err)
	}
	return ownership{uid: uid, gid: gid}, nil
}

var (
	umaskOnce sync.Once
	umaskVal  fs.FileMode
)

// processUmask reads this process's umask without changing it.
func processUmask() fs.FileMode {
	umaskOnce.Do(func() {
		umaskVal = 0o022
		b, err := os.ReadFile("/proc/self/status")
		if err != nil {
			return
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Umask:"); ok {
				if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
					umaskVal = fs.FileMode(m)
				}
			}
		}
	})
	return umaskVal
}
