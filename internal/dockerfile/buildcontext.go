package dockerfile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	cfs "github.com/containerd/continuity/fs"
	"github.com/moby/patternmatcher"

	"github.com/kiln-build/kiln/internal/store"
)

// ErrOutsideContext is wrapped when a source path leaves the context.
var ErrOutsideContext = errors.New("path outside the build context (escaping context directory error)")

// buildContext is the build context read in place: ignore rules apply to
// every read, symlinks resolve inside it, and file digests are computed
// once per build.
type buildContext struct {
	dir string
	pm  *patternmatcher.PatternMatcher

	mu     sync.Mutex
	hashes map[string]store.FileHash // by host path: remembered, then computed
	fresh  map[string]store.FileHash // computed in this build, to remember
	// stats are what streamed copies' walks took, for their keys
	// (copy_stream.go).
	stats     map[string]fs.FileInfo
	statUsers int
	// loaded is closed once the remembered digests are in hashes, or
	// loadErr says why they are not.
	loaded  chan struct{}
	loadErr error
}

func newBuildContext(dir string, ignore []string) (*buildContext, error) {
	bc := &buildContext{hashes: map[string]store.FileHash{}, fresh: map[string]store.FileHash{}}
	if dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, err
		}
		if abs, err = filepath.EvalSymlinks(abs); err != nil {
			return nil, fmt.Errorf("build context %s: %w", dir, err)
		}
		bc.dir = abs
	}
	if len(ignore) > 0 {
		pm, err := patternmatcher.New(ignore)
		if err != nil {
			return nil, fmt.Errorf("ignore file: %w", err)
		}
		bc.pm = pm
	}
	return bc, nil
}

// checkSource refuses a source path that leaves the context lexically.
func checkSource(p string) error {
	c := filepath.ToSlash(filepath.Clean(p))
	if c == ".." || strings.HasPrefix(c, "../") {
		return fmt.Errorf("%w: %s", ErrOutsideContext, p)
	}
	return nil
}

// excluded reports whether a host path under the context is ignored, and
// whether its whole subtree can be skipped (no exception could match).
func (bc *buildContext) excluded(hostPath string, isDir bool) (skip, skipTree bool) {
	if bc.pm == nil {
		return false, false
	}
	rel, err := filepath.Rel(bc.dir, hostPath)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return false, false
	}
	return Excluded(bc.pm, filepath.ToSlash(rel), isDir)
}

// digest hashes what a COPY or ADD of srcs reads from root (the context
// when root is ""): every file's path, type, mode, link target and
// content, after globs, ignore rules and in-root symlink resolution.
func (bc *buildContext) digest(root string, srcs []string) (string, error) {
	return bc.digestWith(root, srcs, bc.fileSum)
}

// digestWith is digest with the file content digests sum gives.
func (bc *buildContext) digestWith(root string, srcs []string, sum func(string, fs.FileInfo) (string, error)) (string, error) {
	confine := root == ""
	if confine {
		root = bc.dir
	}
	h := sha256.New()
	for _, s := range srcs {
		full, err := cfs.RootPath(root, s)
		if err != nil {
			return "", err
		}
		matches, err := filepath.Glob(full)
		if err != nil {
			return "", fmt.Errorf("bad pattern %q: %w", s, err)
		}
		sort.Strings(matches)
		fmt.Fprintf(h, "src %s %d\n", s, len(matches))
		for _, m := range matches {
			if err := bc.hashTree(h, root, m, confine, sum); err != nil {
				return "", err
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (bc *buildContext) hashTree(h io.Writer, root, top string, confine bool, fileSum func(string, fs.FileInfo) (string, error)) error {
	// One line per entry, as fmt.Fprintf(h, "%s %o", rel, mode) and so
	// on would write it, appended to one buffer (a context of 20,000
	// files spent a tenth of its key in fmt).
	var line []byte
	return filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if confine {
			if skip, tree := bc.excluded(p, d.IsDir()); tree {
				return filepath.SkipDir
			} else if skip {
				return nil
			}
		}
		fi, err := bc.info(p, d)
		if err != nil {
			return err
		}
		rel, ok := strings.CutPrefix(p, root+"/")
		if !ok || rel == "" {
			rel, _ = filepath.Rel(root, p)
		}
		line = append(append(line[:0], rel...), ' ')
		line = strconv.AppendUint(line, uint64(fi.Mode()), 8)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line = append(append(line, " -> "...), target...)
		case fi.Mode().IsRegular():
			sum, err := fileSum(p, fi)
			if err != nil {
				return err
			}
			line = append(strconv.AppendInt(append(line, ' '), fi.Size(), 10), ' ')
			line = append(line, sum...)
		}
		_, err = h.Write(append(line, '\n'))
		return err
	})
}

// remember loads the digests the store remembers for the context's
// files, so that a rebuild reads only files whose stat data changed. It
// loads them in the background, while the build starts: what reads the
// digests waits for them (waitRemembered).
func (bc *buildContext) remember(ctx context.Context, st *store.Store) error {
	if bc.dir == "" {
		return nil
	}
	bc.loaded = make(chan struct{})
	go func() {
		defer close(bc.loaded)
		known, err := st.FileHashes(ctx, bc.dir)
		bc.mu.Lock()
		defer bc.mu.Unlock()
		if err != nil {
			bc.loadErr = fmt.Errorf("reading remembered file digests: %w", err)
			return
		}
		if len(bc.hashes) == 0 {
			bc.hashes = known
			return
		}
		for p, h := range known {
			if _, ok := bc.hashes[p]; !ok {
				bc.hashes[p] = h
			}
		}
	}()
	return nil
}

// waitRemembered waits until remember has loaded the digests.
func (bc *buildContext) waitRemembered() error {
	if bc.loaded != nil {
		<-bc.loaded
	}
	return bc.loadErr
}

// save stores the digests computed in this build.
func (bc *buildContext) save(ctx context.Context, st *store.Store) error {
	if bc.dir == "" {
		return nil // nothing loads them
	}
	if err := bc.waitRemembered(); err != nil {
		return err
	}
	bc.mu.Lock()
	defer bc.mu.Unlock()
	return st.PutFileHashes(ctx, bc.dir, bc.fresh)
}

// fileSum is a file's content digest, remembered by path, size, mtime,
// ctime and inode.
func (bc *buildContext) fileSum(p string, fi fs.FileInfo) (string, error) {
	if err := bc.waitRemembered(); err != nil {
		return "", err
	}
	key := store.FileHash{Size: fi.Size(), MTime: fi.ModTime().UnixNano()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		key.Ino = sys.Ino
		key.CTime = sys.Ctim.Nano()
	}
	bc.mu.Lock()
	old, ok := bc.hashes[p]
	bc.mu.Unlock()
	if ok && old.Size == key.Size && old.MTime == key.MTime && old.CTime == key.CTime && old.Ino == key.Ino {
		return old.Sum, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sh := sha256.New()
	if _, err := io.Copy(sh, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", p, err)
	}
	key.Sum = hex.EncodeToString(sh.Sum(nil))
	bc.mu.Lock()
	bc.hashes[p], bc.fresh[p] = key, key
	bc.mu.Unlock()
	return key.Sum, nil
}
