package images

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
)

// RegistryCache is the remote build cache of --cache-from and --cache-to:
// step results stored in registry repositories, each tagged with its
// cache key, as Buildah does. It satisfies dockerfile.RemoteCache. Safe
// for concurrent use by the stages of one build.
type RegistryCache struct {
	st   *store.Store
	from []string
	to   string
	sys  *transport.SystemContext
	log  *slog.Logger
}

// RegistryCacheOptions name the repositories of a RegistryCache.
type RegistryCacheOptions struct {
	// From are the repositories steps are fetched from, first first;
	// To is the one steps are stored to ("" stores nowhere). Each is
	// "REPO", "docker://REPO" or "type=registry,ref=REPO".
	From []string
	To   string
	// System reaches the registries; nil means the defaults.
	System *transport.SystemContext
	// Logger receives a warning for each repository that cannot be
	// reached; nil discards them.
	Logger *slog.Logger
}

// NewRegistryCache returns the cache of o's repositories, or nil when o
// names none.
func NewRegistryCache(st *store.Store, o RegistryCacheOptions) (*RegistryCache, error) {
	if len(o.From) == 0 && o.To == "" {
		return nil, nil
	}
	c := &RegistryCache{st: st, sys: o.System, log: o.Logger}
	if c.sys == nil {
		c.sys = &transport.SystemContext{}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	for _, f := range o.From {
		repo, err := cacheRepo(f)
		if err != nil {
			return nil, err
		}
		c.from = append(c.from, repo)
	}
	if o.To != "" {
		repo, err := cacheRepo(o.To)
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
		return "", fmt.Errorf("cache repository %q: want a registry repository such as registry.example.com/cache", v)
	}
	return v, nil
}

func (c *RegistryCache) ref(repo, key string) (transport.Ref, error) {
	return transport.ParseReference("docker://" + repo + ":" + key)
}

// Fetch pulls the image tagged key from the first From repository that
// has it. A repository that lacks it, or cannot be reached, is a miss,
// not an error.
func (c *RegistryCache) Fetch(ctx context.Context, key string) (store.Image, bool, error) {
	for _, repo := range c.from {
		ref, err := c.ref(repo, key)
		if err != nil {
			return store.Image{}, false, err
		}
		src, err := ref.NewSource(ctx, c.sys)
		if errors.Is(err, transport.ErrNotFound) {
			continue
		}
		if err != nil {
			c.log.Warn("cache source unavailable", "repository", repo, "error", err)
			continue
		}
		dst := c.st.NewImageDestination(nil)
		_, err = transport.Copy(ctx, dst, src, transport.CopyOptions{Logger: c.log, TempDir: c.sys.TempDir})
		src.Close()
		dst.Close()
		if errors.Is(err, transport.ErrNotFound) {
			continue
		}
		if err != nil {
			return store.Image{}, false, fmt.Errorf("pulling cached step %s from %s: %w", key, repo, err)
		}
		return dst.Image(), true, nil
	}
	return store.Image{}, false, nil
}

// Store pushes a step's image to the To repository, tagged with its key,
// with gzip layers.
func (c *RegistryCache) Store(ctx context.Context, key string, img store.Image) error {
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
	_, err = transport.Copy(ctx, dst, c.st.NewImageSource(ctx, img), transport.CopyOptions{Compression: comp, Logger: c.log})
	return err
}
