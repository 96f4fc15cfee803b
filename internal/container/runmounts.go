package container

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	cfs "github.com/containerd/continuity/fs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/run"
	"github.com/kiln-build/kiln/internal/store"
)

// What a build's RUN --mount and `kiln run --mount` take from the store:
// an image's files, and cache directories kept across runs and builds.

// MountImage mounts the root filesystem of the local image imageID
// through a temporary container (removed by release, or by
// RemoveAbandoned if the process dies first) and returns its path. What
// a process writes there goes to that container's layer, never to the
// image.
func MountImage(ctx context.Context, st *store.Store, imageID string) (root string, release func(context.Context), err error) {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	name := "kiln-mount-from-" + hex.EncodeToString(rnd[:])
	c, err := New(ctx, st, NewOptions{Image: imageID, Name: name, Temporary: true})
	if err != nil {
		return "", nil, err
	}
	root, err = c.Mount(ctx)
	if err != nil {
		_ = c.Remove(context.WithoutCancel(ctx))
		return "", nil, err
	}
	return root, func(ctx context.Context) { _ = c.Remove(ctx) }, nil
}

// CacheDirOptions are a cache mount's directory settings (BuildKit's and
// Buildah's id, mode, uid and gid).
type CacheDirOptions struct {
	// ID names the cache; mounts with the same ID share the directory.
	ID string
	// Mode, UID and GID are the new directory's; a directory that
	// exists keeps its own. Mode 0 means 0755.
	Mode     os.FileMode
	UID, GID int
}

// CacheDir returns the directory of cache o.ID in st, made when missing.
// The directories live under the store's root (build-cache-mounts), so
// builds and runs of one store share them.
func CacheDir(st *store.Store, o CacheDirOptions) (string, error) {
	sum := sha256.Sum256([]byte(o.ID))
	dir := filepath.Join(st.Root(), "build-cache-mounts", hex.EncodeToString(sum[:16]))
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		return dir, err
	}
	mode := o.Mode
	if mode == 0 {
		mode = 0o755
	}
	if err := os.MkdirAll(dir, mode); err != nil {
		return "", err
	}
	if err := os.Chown(dir, o.UID, o.GID); err != nil {
		return "", err
	}
	return dir, os.Chmod(dir, mode)
}

// ResolveMount gives a parsed `kiln run --mount` its source from the
// store: a bind with From binds Source inside that local image's root
// (mounted as by MountImage); a cache binds its cache directory
// (CacheDir), locked for the run with sharing=locked. release undoes
// what the mount needed; it is never nil. Other mounts come back as
// they are.
func ResolveMount(ctx context.Context, st *store.Store, req run.MountRequest) (specs.Mount, func(context.Context), error) {
	m := req.Mount
	none := func(context.Context) {}
	switch {
	case req.Cache != nil:
		dir, err := CacheDir(st, CacheDirOptions{ID: req.Cache.ID, Mode: req.Cache.Mode, UID: req.Cache.UID, GID: req.Cache.GID})
		if err != nil {
			return m, none, fmt.Errorf("cache mount %s: %w", m.Destination, err)
		}
		m.Source = dir
		if !req.Cache.Locked {
			return m, none, nil
		}
		unlock, err := lockCacheDir(dir)
		if err != nil {
			return m, none, err
		}
		return m, unlock, nil
	case req.From != "":
		img, err := st.LookupImage(ctx, req.From)
		if err != nil {
			return m, none, fmt.Errorf("mount from %s: %w", req.From, err)
		}
		root, release, err := MountImage(ctx, st, img.ID)
		if err != nil {
			return m, none, fmt.Errorf("mount from %s: %w", req.From, err)
		}
		if m.Source, err = cfs.RootPath(root, m.Source); err == nil {
			_, err = os.Lstat(m.Source)
		}
		if err != nil {
			release(context.WithoutCancel(ctx))
			return m, none, fmt.Errorf("mount from %s: source %s: %w", req.From, req.Mount.Source, err)
		}
		return m, release, nil
	}
	return m, none, nil
}

// lockCacheDir holds an exclusive lock on the cache directory dir until
// the returned function is called (sharing=locked).
func lockCacheDir(dir string) (func(context.Context), error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking cache %s: %w", dir, err)
	}
	return func(context.Context) { f.Close() }, nil
}
