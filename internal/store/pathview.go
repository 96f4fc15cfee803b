package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/archive"
	"github.com/kiln-build/kiln/internal/idmap"
	"github.com/kiln-build/kiln/internal/store/driver"
)

// PathEntry is one path of a layer chain's tree, as a container mounted
// on the chain would show it.
type PathEntry struct {
	// Mode holds the type, permission, set-id and sticky bits.
	Mode     fs.FileMode
	UID, GID int
	Size     int64
	ModTime  time.Time
	// Linkname is a symlink's target.
	Linkname string
	// Xattrs are the extended attributes a layer tar records.
	Xattrs map[string]string
	// Nlink, Dev and Ino identify the file: the paths of one file (hard
	// links) have the same Dev and Ino.
	Nlink    uint64
	Dev, Ino uint64
}

// IsDir reports whether the entry is a directory.
func (e PathEntry) IsDir() bool { return e.Mode.IsDir() }

// PathView is a read-only view of the tree a layer chain makes, read
// without mounting it and without making the files of layers that exist
// only as blobs: layers with files are read in their snapshots' own
// content (top down, with whiteouts and opaque directories), layers
// without through an index of their tar (layerindex.go). It sees the
// chain as it was when it was opened. Its methods are safe for
// concurrent use; Close it.
type PathView struct {
	s      *Store
	layers []*viewLayer // top first
	mu     sync.Mutex
	stacks map[string]stackEntry
}

// viewLayer is one layer of a view: a snapshot's content directory, or
// an index. A whole tree (a vfs or btrfs snapshot) is the lowest layer a
// view reads.
type viewLayer struct {
	l       Layer
	content string // the snapshot's content directory, when the layer has files
	whole   bool   // content holds the whole tree, not a diff
	idx     *layerIndex
	blob    *os.File // the uncompressed tar, opened on first read
}

// entryKind is what one layer holds at a path.
type entryKind int

const (
	kindAbsent entryKind = iota
	kindWhiteout
	kindPresent
)

// OpenPathView opens a view of the chain ending at layer top ("" for an
// empty tree). Layers without files are indexed, once per layer.
func (s *Store) OpenPathView(ctx context.Context, top string) (*PathView, error) {
	v := &PathView{s: s, stacks: map[string]stackEntry{}}
	if top == "" {
		return v, nil
	}
	chain, err := s.LayerChain(ctx, top)
	if err != nil {
		return nil, err
	}
	_, diffs := s.driver.(driver.ParentAtMount)
	for i := len(chain) - 1; i >= 0; i-- {
		vl, err := s.viewLayer(ctx, chain[i], !diffs)
		if err != nil {
			v.Close()
			return nil, err
		}
		v.layers = append(v.layers, vl)
		if vl.whole {
			break
		}
	}
	return v, nil
}

func (s *Store) viewLayer(ctx context.Context, l Layer, whole bool) (*viewLayer, error) {
	if l.Files {
		dir, err := s.driver.Content(l.ID)
		if err == nil {
			return &viewLayer{l: l, content: dir, whole: whole}, nil
		}
		if !errors.Is(err, driver.ErrNotExist) {
			return nil, err
		}
	}
	idx, err := s.layerIndexOf(ctx, l)
	if err != nil {
		return nil, err
	}
	return &viewLayer{l: l, idx: idx}, nil
}

// Close releases the files the view holds open.
func (v *PathView) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, l := range v.layers {
		if l.blob != nil {
			l.blob.Close()
			l.blob = nil
		}
	}
	return nil
}

// get reports what layer i holds at p, with its extended attributes when
// meta is set.
func (v *PathView) get(i int, p string, meta bool) (entryKind, PathEntry, error) {
	l := v.layers[i]
	if l.idx != nil {
		if l.idx.whiteouts[p] {
			return kindWhiteout, PathEntry{}, nil
		}
		rec, ok := l.idx.entries[p]
		if !ok {
			return kindAbsent, PathEntry{}, nil
		}
		return kindPresent, recordEntry(rec, i), nil
	}
	full := filepath.Join(l.content, p)
	var st unix.Stat_t
	if err := unix.Lstat(full, &st); err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return kindAbsent, PathEntry{}, nil
		}
		return 0, PathEntry{}, &fs.PathError{Op: "lstat", Path: full, Err: err}
	}
	if !l.whole && st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
		return kindWhiteout, PathEntry{}, nil
	}
	e, err := statEntry(full, &st, meta)
	if err == nil && v.s.snapshotsReadOnly {
		err = imageOwners(&e, full)
	}
	return kindPresent, e, err
}

// opaque reports whether layer i hides what the layers below hold in
// directory dir.
func (v *PathView) opaque(i int, dir string) bool {
	l := v.layers[i]
	switch {
	case l.whole:
		return true
	case l.idx != nil:
		return l.idx.opaque[dir]
	}
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(filepath.Join(l.content, dir), archive.OpaqueXattr(), buf)
	return err == nil && string(buf[:n]) == "y"
}

// dirState is what the view holds at a path, as a directory.
type dirState int

const (
	stateMissing dirState = iota
	stateNotDir
	stateDir
)

// stackEntry is a directory's stack in the view, cached.
type stackEntry struct {
	layers []int
	state  dirState
}

// stack returns the layers whose directory dir makes up dir in the view,
// top first, and whether dir is a directory (or not there, or another
// kind of file).
func (v *PathView) stack(dir string) ([]int, dirState, error) {
	if s, ok := v.stacks[dir]; ok {
		return s.layers, s.state, nil
	}
	var below []int
	if dir == "/" {
		for i := range v.layers {
			below = append(below, i)
		}
	} else {
		parent, st, err := v.stack(path.Dir(dir))
		if err != nil {
			return nil, stateMissing, err
		}
		if st != stateDir {
			v.stacks[dir] = stackEntry{state: stateMissing}
			return nil, stateMissing, nil
		}
		below = parent
	}
	out := []int{}
	state := stateDir
	for _, i := range below {
		if dir != "/" {
			k, e, err := v.get(i, dir, false)
			if err != nil {
				return nil, stateMissing, err
			}
			if k == kindPresent && !e.IsDir() && len(out) == 0 {
				state = stateNotDir
			}
			if k == kindWhiteout || k == kindPresent && !e.IsDir() {
				break
			}
			if k == kindAbsent {
				continue
			}
		}
		out = append(out, i)
		if v.opaque(i, dir) {
			break
		}
	}
	if dir != "/" && len(out) == 0 {
		out = nil
		if state == stateDir {
			state = stateMissing
		}
	}
	v.stacks[dir] = stackEntry{layers: out, state: state}
	return out, state, nil
}

// Lstat describes path p (absolute) without following a final symlink.
// Every directory on the way must be a directory of the view: a symlink
// there is not followed (resolve paths first). Errors wrap fs.ErrNotExist
// or syscall.ENOTDIR.
func (v *PathView) Lstat(p string) (PathEntry, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	_, e, err := v.find(p)
	return e, err
}

// find returns the layer that shows p and its entry.
func (v *PathView) find(p string) (int, PathEntry, error) {
	p = path.Clean("/" + p)
	if p == "/" {
		if len(v.layers) == 0 {
			return -1, PathEntry{Mode: fs.ModeDir | 0o755, Nlink: 1}, nil
		}
		return v.rootEntry()
	}
	s, st, err := v.stack(path.Dir(p))
	if err != nil {
		return -1, PathEntry{}, err
	}
	if st != stateDir {
		return -1, PathEntry{}, &fs.PathError{Op: "lstat", Path: p, Err: v.missingErr(path.Dir(p))}
	}
	for _, i := range s {
		k, e, err := v.get(i, p, true)
		if err != nil {
			return -1, PathEntry{}, err
		}
		switch k {
		case kindWhiteout:
			return -1, PathEntry{}, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
		case kindPresent:
			return i, e, nil
		}
	}
	return -1, PathEntry{}, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
}

// missingErr is the error of a lookup below dir, which is not a
// directory: ENOTDIR when dir or a directory above it is another kind
// of file, as the kernel reports it.
func (v *PathView) missingErr(dir string) error {
	for ; dir != "/"; dir = path.Dir(dir) {
		if s, ok := v.stacks[dir]; ok && s.state == stateNotDir {
			return syscall.ENOTDIR
		}
		if s, ok := v.stacks[path.Dir(dir)]; ok && s.state == stateDir {
			return fs.ErrNotExist
		}
	}
	return fs.ErrNotExist
}

// rootEntry describes "/" as the top layer that has it shows it.
func (v *PathView) rootEntry() (int, PathEntry, error) {
	for i, l := range v.layers {
		if l.idx != nil {
			continue
		}
		var st unix.Stat_t
		if err := unix.Lstat(l.content, &st); err != nil {
			return -1, PathEntry{}, err
		}
		e, err := statEntry(l.content, &st, true)
		if err == nil && v.s.snapshotsReadOnly {
			err = imageOwners(&e, l.content)
		}
		return i, e, err
	}
	return -1, PathEntry{Mode: fs.ModeDir | 0o755, Nlink: 1}, nil
}

// ReadDir lists the names in directory p of the view, sorted.
func (v *PathView) ReadDir(p string) ([]string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	p = path.Clean("/" + p)
	s, st, err := v.stack(p)
	if err != nil {
		return nil, err
	}
	switch st {
	case stateNotDir:
		return nil, &fs.PathError{Op: "readdir", Path: p, Err: syscall.ENOTDIR}
	case stateMissing:
		return nil, &fs.PathError{Op: "readdir", Path: p, Err: v.missingErr(p)}
	}
	seen := map[string]bool{}
	var out []string
	for _, i := range s {
		names, err := v.names(i, p)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if seen[n] {
				continue
			}
			seen[n] = true
			k, _, err := v.get(i, path.Join(p, n), false)
			if err != nil {
				return nil, err
			}
			if k == kindPresent {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// names lists what layer i holds in directory dir, whiteouts included.
func (v *PathView) names(i int, dir string) ([]string, error) {
	l := v.layers[i]
	if l.idx != nil {
		return l.idx.children[dir], nil
	}
	ents, err := os.ReadDir(filepath.Join(l.content, dir))
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out, nil
}

// Open opens the content of regular file p. A file of a layer that has
// only a compressed blob is read from the layer's files, which are made
// for it (EnsureFiles).
func (v *PathView) Open(ctx context.Context, p string) (io.ReadCloser, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	p = path.Clean("/" + p)
	i, e, err := v.find(p)
	if err != nil {
		return nil, err
	}
	if !e.Mode.IsRegular() {
		return nil, &fs.PathError{Op: "open", Path: p, Err: syscall.EINVAL}
	}
	l := v.layers[i]
	if l.idx == nil {
		return os.Open(filepath.Join(l.content, p))
	}
	rec := l.idx.entries[p]
	if l.blob == nil {
		f, err := v.s.OpenBlob(l.l.DiffID)
		if err == nil {
			l.blob = f
		} else if !errors.Is(err, ErrBlobUnknown) {
			return nil, err
		}
	}
	if l.blob != nil && rec.Offset >= 0 {
		return io.NopCloser(io.NewSectionReader(l.blob, rec.Offset, rec.Size)), nil
	}
	// Only a compressed blob (or files made since the view opened).
	if err := v.s.EnsureFiles(ctx, l.l.ID); err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	dir, err := v.s.driver.Content(l.l.ID)
	if err != nil {
		return nil, err
	}
	return os.Open(filepath.Join(dir, p))
}

// recordEntry is an index record as a PathEntry; the files of layer i's
// index have device number i+1 above any real one.
func recordEntry(r *indexRecord, i int) PathEntry {
	return PathEntry{Mode: fs.FileMode(r.Mode), UID: r.UID, GID: r.GID, Size: r.Size, ModTime: time.Unix(0, r.MTime),
		Linkname: r.Link, Xattrs: r.Xattrs, Nlink: uint64(r.Nlink), Dev: 1<<63 | uint64(i), Ino: uint64(r.Group) + 1}
}

// statEntry describes a file of a snapshot, with its extended attributes
// (overlay's own excepted).
func statEntry(full string, st *unix.Stat_t, meta bool) (PathEntry, error) {
	e := PathEntry{Mode: archive.FileMode(st.Mode), UID: int(st.Uid), GID: int(st.Gid), Size: st.Size,
		ModTime: time.Unix(st.Mtim.Unix()), Nlink: uint64(st.Nlink), Dev: uint64(st.Dev), Ino: st.Ino}
	if e.Mode&fs.ModeSymlink != 0 {
		link, err := os.Readlink(full)
		if err != nil {
			return PathEntry{}, err
		}
		e.Linkname = link
	}
	if !e.Mode.IsRegular() {
		e.Size = 0
	}
	if !meta {
		return e, nil
	}
	x, err := listXattrs(full)
	if err != nil {
		return PathEntry{}, err
	}
	e.Xattrs = x
	return e, nil
}

// imageOwners gives e, read from snapshot file full by a process outside
// the user namespace that owns the store's files (SnapshotsReadOnly), the
// owners the namespace shows: the disk holds host IDs. What the kernel
// translates inside the file's attributes (ACLs, namespaced file
// capabilities) is left to the namespace: ErrSnapshotsReadOnly.
func imageOwners(e *PathEntry, full string) error {
	m, err := idmap.Current()
	if err != nil {
		return err
	}
	uid, uok := m.UIDs.ToContainer(uint32(e.UID))
	gid, gok := m.GIDs.ToContainer(uint32(e.GID))
	if !uok || !gok {
		return fmt.Errorf("%w: %s is owned by host IDs %d:%d, which the user namespace does not map", ErrSnapshotsReadOnly, full, e.UID, e.GID)
	}
	e.UID, e.GID = int(uid), int(gid)
	for name := range e.Xattrs {
		if strings.HasPrefix(name, "system.posix_acl_") || name == "security.capability" {
			return fmt.Errorf("%w: %s has %s, which only the user namespace reads as the image has it", ErrSnapshotsReadOnly, full, name)
		}
	}
	return nil
}

// listXattrs reads a file's extended attributes, overlay's own excepted.
func listXattrs(full string) (map[string]string, error) {
	sz, err := unix.Llistxattr(full, nil)
	if err != nil || sz == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		return nil, err
	}
	buf := make([]byte, sz)
	n, err := unix.Llistxattr(full, buf)
	if err != nil {
		return nil, err
	}
	var out map[string]string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" || archive.OverlayXattr(name) {
			continue
		}
		vsz, err := unix.Lgetxattr(full, name, nil)
		if err != nil {
			continue
		}
		val := make([]byte, vsz)
		vn, err := unix.Lgetxattr(full, name, val)
		if err != nil {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = string(val[:vn])
	}
	return out, nil
}
