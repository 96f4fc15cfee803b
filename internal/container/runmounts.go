package container

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"

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
