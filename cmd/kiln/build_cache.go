package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/kiln-build/kiln/internal/dockerfile"
	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
	"github.com/kiln-build/kiln/internal/transport/registry"
)

// registryCache is --cache-from / --cache-to: step results stored in a
// registry repository, tagged with their cache key, as Buildah does.
type registryCache struct {
	st   *store.Store
	from []string
	to   string
	sys  *transport.SystemContext
}

var _ dockerfile.RemoteCache = (*registryCache)(nil)

// newRegistryCache parses the flags; nil when neither is given.
func newRegistryCache(st *store.Store, o buildOptions) (*registryCache, error) {
	if len(o.CacheFrom) == 0 && o.CacheTo == "" {
		return nil, nil
	}
	c := &registryCache{st: st, sys: o.registryFlags.systemContext()}
	for _, f := range o.CacheFrom {
		repo, err := cacheRepo(f)
		if err != nil {
			return nil, err
		}
		c.from = append(c.from, repo)
	}
	if o.CacheTo != "" {
		repo, err := cacheRepo(o.CacheTo)
		if err != nil {
			return nil, err
		}
		c.to = repo
	}
	return c, nil
}

// cacheRepo accepts "REPO", "docker://REPO" and "type=registry,ref=REPO".
func cacheRepo(v string) (string, error) {
	if strings.Contains(v, "=") {
		for _, kv := range strings.Split(v, ",") {
			if r, ok := strings.CutPrefix(kv, "ref="); ok {
				v = r
			}
		}
	}
	v = strings.TrimPrefix(v, "docker://")
	if v == "" || strings.Contains(v, "=") || strings.ContainsAny(v, "@") {
		return "", usageErrorf("cache repository %q: want a registry repository such as registry.example.com/cache", v)
	}
	return v, nil
}

func (c *registryCache) ref(repo, key string) (transport.Ref, error) {
	return transport.ParseReference("docker://" + repo + ":" + key)
}

// Fetch pulls the image tagged key from the first --cache-from repository
// that has it. A repository that lacks it is a miss, not an error.
func (c *registryCache) Fetch(ctx context.Context, key string) (store.Image, bool, error) {
	for _, repo := range c.from {
		ref, err := c.ref(repo, key)
		if err != nil {
			return store.Image{}, false, err
		}
		src, err := ref.NewSource(ctx, c.sys)
		if errors.Is(err, registry.ErrNotFound) {
			continue
		}
		if err != nil {
			logger.Warn("cache source unavailable", "repository", repo, "error", err)
			continue
		}
		dst := c.st.NewImageDestination(nil)
		_, err = transport.Copy(ctx, dst, src, transport.CopyOptions{Logger: logger, TempDir: c.sys.TempDir})
		src.Close()
		dst.Close()
		if errors.Is(err, registry.ErrNotFound) {
			continue
		}
		if err != nil {
			return store.Image{}, false, fmt.Errorf("pulling cached step %s from %s: %w", key, repo, err)
		}
		return dst.Image(), true, nil
	}
	return store.Image{}, false, nil
}

// Store pushes a step's image to --cache-to, tagged with its key.
func (c *registryCache) Store(ctx context.Context, key string, img store.Image) error {
	if c.to == "" {
		return nil
	}
	ref, err := c.ref(c.to, key)
	if err != nil {
		return err
	}
	dst, err := ref.NewDestination(ctx, c.sys)
	if err != nil {
		return fmt.Errorf("opening cache repository %s: %w", c.to, err)
	}
	defer dst.Close()
	comp, err := transport.ParseCompression("gzip")
	if err != nil {
		return err
	}
	_, err = transport.Copy(ctx, dst, c.st.NewImageSource(ctx, img), transport.CopyOptions{Compression: comp, Logger: logger})
	return err
}
