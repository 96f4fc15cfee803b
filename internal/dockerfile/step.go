package dockerfile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store"
)

// cacheVersion changes whenever what a key covers, or what a step with
// the same key makes, changes (v2: the default PATH and scratch's "/",
// what RUN --mount leaves, hard links in COPY; v3: a COPY source that is
// a symlink keeps its own name in a directory).
const cacheVersion = "kiln-build-cache-v3"

// key is a step's cache key: the parent image, the timestamp, the instruction, the stage's platform, and the parts the step adds (args used,
// file digests).
func (r *stageRun) key(text string, parts []string) string {
	h := sha256.New()
	ts := ""
	if t := r.b.o.Commit.Timestamp; t != nil {
		ts = t.UTC().Format(time.RFC3339Nano)
	}
	parent := r.cur.ID
	if parent == "" {
		parent = "scratch"
	}
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%t\x00%s\x00", cacheVersion, parent, ts, r.clearOnBuild, text)
	fmt.Fprintf(h, "platform:%s\x00", platformKey(r.platform))
	for _, p := range parts {
		fmt.Fprintf(h, "%s\x00", p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// stepFunc applies a step to the working container. A step that may
// add a layer returns errNoChange when it changed no file.
type stepFunc func(ctx context.Context, c *container.Container) error

// testHookAfterHit, set by tests, runs after every cache hit.
var testHookAfterHit func(store.Image)

// errNoChange tells do to record the step without a layer.
var errNoChange = errors.New("no change")

// do runs one step through the cache: a hit moves to the cached image;
// a miss applies fn to the working container and, with --layers, commits
// it (as a layer when layer is set) and records the key.
func (r *stageRun) do(ctx context.Context, text string, parts []string, layer bool, fn stepFunc) error {
	r.lastText = text
	if f := r.stepFormat(); f != image.FormatDocker && r.losesInFormat(text) {
		parts = append(parts, "format:"+f.String())
	}
	key := r.key(text, parts)
	cache := r.b.o.Cache
	if cache.Layers && !cache.NoCache && !r.dirty {
		img, ok, err := r.b.st.CacheLookup(ctx, key)
		if err != nil {
			return err
		}
		if !ok {
			if img, ok, err = r.fetchRemote(ctx, key); err != nil {
				return err
			}
		}
		if ok && cache.TTL > 0 && time.Since(img.Created) > cache.TTL {
			ok = false // older than --cache-ttl allows
		}
		if ok {
			err := r.useImage(ctx, img)
			if !errors.Is(err, store.ErrBlobUnknown) {
				if err != nil {
					return err
				}
				r.reportHit(img)
				r.hits = append(r.hits, key)
				r.b.recordStep(key, img)
				if testHookAfterHit != nil {
					testHookAfterHit(img)
				}
				return nil
			}
			// Removed by another process since the lookup: a miss.
		}
	}
	c, err := r.container(ctx)
	if err != nil {
		return err
	}
	err = fn(ctx, c)
	if errors.Is(err, errNoChange) {
		layer, err = false, nil
	}
	if err != nil {
		return err
	}
	if !cache.Layers {
		r.dirty = true
		return nil
	}
	img, err := r.commit(ctx, text, layer)
	if err != nil {
		return err
	}
	r.cur = img
	if err := r.b.st.CachePut(ctx, key, img.ID); err != nil {
		return err
	}
	r.b.recordStep(key, img)
	r.reportStep(img)
	return nil
}

// losesInFormat says whether the step's image in another format than
// Docker's can lack what the Docker one has (SHELL, HEALTHCHECK,
// ONBUILD): only then are the two different cache entries, and a final
// stage's last step is found again as another stage's step, as Buildah
// finds it.
func (r *stageRun) losesInFormat(text string) bool {
	if len(r.config().DockerOnlyFields()) > 0 {
		return true
	}
	word, _, _ := strings.Cut(text, " ")
	switch strings.ToUpper(word) {
	case "SHELL", "HEALTHCHECK", "ONBUILD":
		return true
	}
	return false
}

// reportHit prints a cache hit as Buildah does with --layers ("-->
// Using cache ID", then "--> ID" unless the final image's COMMIT lines
// follow).
func (r *stageRun) reportHit(img store.Image) {
	r.lastHit = r.last
	if r.b.o.Logger != nil {
		// Buildah's words: the step was found without running it.
		r.b.o.Logger.Debug("Found a cache hit in the first iteration with id " + img.ID)
	}
	if r.b.o.StepIDs {
		r.b.out.plain("--> Using cache %s", img.ID)
		r.reportStep(img)
	}
}

// reportStep prints a step's image ID as Buildah does with --layers,
// except for the final image's, which finish prints.
func (r *stageRun) reportStep(img store.Image) {
	if r.b.o.StepIDs && !(r.last && r.final) {
		r.b.out.plain("--> %s", shortID(img.ID))
	}
}

// commit commits the working container as an unnamed image. Step images
// are kept in Docker's format, which keeps every field a later step may
// read (SHELL, ONBUILD, HEALTHCHECK); the final image is written in the
// asked format by finish.
func (r *stageRun) commit(ctx context.Context, text string, layer bool) (store.Image, error) {
	c, err := r.container(ctx)
	if err != nil {
		return store.Image{}, err
	}
	img, err := c.Commit(ctx, container.CommitOptions{
		Format: r.stepFormat(), Timestamp: r.b.o.Commit.Timestamp,
		CreatedBy: createdBy(text), EmptyLayer: !layer, Hold: true,
	})
	if err != nil {
		return store.Image{}, err
	}
	r.b.hold(img)
	r.dirty = false
	return img, nil
}

// stepFormat is the format a step's image is written in: Docker's, which
// keeps every field a later step may read (SHELL, ONBUILD, HEALTHCHECK),
// except for the final stage's last step, which is the final image and
// is written as asked, so that the build leaves one image for it, as
// Buildah does.
func (r *stageRun) stepFormat() image.Format {
	if r.final && r.last && !r.b.o.Commit.Squash {
		return r.b.o.Commit.Format
	}
	return image.FormatDocker
}

// createdBy is the history text of a step, in Buildah's shape.
func createdBy(text string) string {
	if rest, ok := strings.CutPrefix(text, "RUN "); ok {
		return "/bin/sh -c " + rest
	}
	if text == "" {
		return ""
	}
	return "/bin/sh -c #(nop) " + text
}

// shortID is an image ID as Buildah's step lines show it: 11 digits.
func shortID(id string) string {
	if len(id) > 11 {
		return id[:11]
	}
	return id
}

// usedArgs lists the args in scope that names holds, as K=V parts of a
// cache key, sorted.
func (r *stageRun) usedArgs(names map[string]struct{}) []string {
	var out []string
	for k := range names {
		if v, ok := r.args.values[k]; ok {
			out = append(out, "arg:"+k+"="+v)
		}
	}
	sort.Strings(out)
	return out
}

// expander expands words with the stage's ARGs and ENV and collects the
// names it used.
func (r *stageRun) expander(used map[string]struct{}) func(string) (string, error) {
	env := envGetter{args: r.args, env: r.config().Config.Env}
	return func(word string) (string, error) {
		res, err := expand(r.lex, word, env)
		if err != nil {
			return "", err
		}
		for k := range res.Matched {
			used[k] = struct{}{}
		}
		return res.Result, nil
	}
}

// fetchRemote asks the remote cache for a step missing locally.
func (r *stageRun) fetchRemote(ctx context.Context, key string) (store.Image, bool, error) {
	if r.b.o.Remote == nil {
		return store.Image{}, false, nil
	}
	img, ok, err := r.b.o.Remote.Fetch(ctx, key)
	if err != nil || !ok {
		return store.Image{}, false, err
	}
	return img, true, r.b.st.CachePut(ctx, key, img.ID)
}

// recordStep remembers a step's result for --cache-to.
func (b *builder) recordStep(key string, img store.Image) {
	if b.o.Remote == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.steps = append(b.steps, cachedStep{key: key, image: img})
}

type cachedStep struct {
	key   string
	image store.Image
}

// exportCache sends every step's result to the remote cache.
func (b *builder) exportCache(ctx context.Context) error {
	if b.o.Remote == nil {
		return nil
	}
	for _, s := range b.steps {
		if err := b.o.Remote.Store(ctx, s.key, s.image); err != nil {
			return fmt.Errorf("exporting the build cache: %w", err)
		}
	}
	return nil
}
