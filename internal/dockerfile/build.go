package dockerfile

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/store"
)

// builder holds one build's shared state. Stages run concurrently; what
// they share is guarded by mu or is read-only after Build starts.
type builder struct {
	st      *store.Store
	o       Options
	df      *dockerfile
	global  *argSet
	args    usage
	bctx    *buildContext
	out     *output
	results map[int]*stageResult
	sem     chan struct{}

	mu      sync.Mutex
	cleanup []string     // image IDs of stage results to remove after the build
	held    []string     // image IDs the build holds from prune until it ends
	steps   []cachedStep // step results for --cache-to
}

// errCacheVanished is wrapped when an image the build took from the
// cache was removed by another process before the build used it.
var errCacheVanished = errors.New("an image taken from the build cache was removed")

// stageResult is a stage's outcome, published when done closes.
type stageResult struct {
	done  chan struct{}
	image store.Image
	err   error
	// base is the image the stage's chain of FROMs starts from.
	base baseImage
}

// baseImage is the image a stage starts from, as the final image's
// org.opencontainers.image.base.* annotations name it; zero for scratch.
type baseImage struct {
	digest, name string
}

// Build runs the build o describes in store st and returns the final
// image. On error, the build's containers are gone (unless
// KeepOnFailure) and the store holds only complete images.
func Build(ctx context.Context, st *store.Store, o Options) (Result, error) {
	df, err := parseDockerfile(o.DockerfileName, o.Dockerfile)
	if err != nil {
		return Result{}, err
	}
	b := &builder{st: st, o: o, df: df, out: newOutput(o.Out), results: map[int]*stageResult{}}
	// Containers of builds whose kiln was killed go first.
	if n, err := container.RemoveAbandoned(ctx, st); err != nil {
		return Result{}, fmt.Errorf("removing containers of interrupted builds: %w", err)
	} else if n > 0 && o.Logger != nil {
		o.Logger.Info(fmt.Sprintf("removed %d containers of interrupted builds", n))
	}
	if b.global, err = globalArgs(df, o.Platform, o.Args, &b.args); err != nil {
		return Result{}, err
	}
	warnUnsetArgs(df, o.Args, o.Logger)
	if b.bctx, err = newBuildContext(o.ContextDir, o.Ignore); err != nil {
		return Result{}, err
	}
	if err := b.bctx.remember(ctx, st); err != nil {
		return Result{}, err
	}
	defer func() {
		if err := b.bctx.save(context.WithoutCancel(ctx), st); err != nil && b.o.Logger != nil {
			b.o.Logger.Warn("remembering context file digests", "error", err)
		}
	}()
	target, err := df.target(o.Target)
	if err != nil {
		return Result{}, err
	}
	needed, err := b.plan(target)
	if err != nil {
		return Result{}, err
	}
	jobs := o.Jobs
	if jobs <= 0 {
		jobs = runtime.NumCPU()
	}
	b.sem = make(chan struct{}, jobs)
	defer b.releaseImages(context.WithoutCancel(ctx))
	img, err := b.runStages(ctx, needed, target)
	b.removeStageImages(context.WithoutCancel(ctx), img.ID)
	if errors.Is(err, errCacheVanished) {
		// Another process removed an image this build had taken from the
		// cache; its entries are gone with it, so a second run rebuilds
		// what it held.
		b.out.line(target, len(df.stages), "--> a cached image was removed meanwhile: building again")
		b.results, b.cleanup = map[int]*stageResult{}, nil
		img, err = b.runStages(ctx, needed, target)
		b.removeStageImages(context.WithoutCancel(ctx), img.ID)
	}
	if err != nil {
		return Result{}, err
	}
	if err := b.exportCache(ctx); err != nil {
		return Result{}, err
	}
	if unused := b.args.unused(o.Args); len(unused) > 0 && b.o.Logger != nil {
		b.o.Logger.Warn(fmt.Sprintf("one or more build args were not consumed: %v", unused))
	}
	return Result{ImageID: img.ID, Digest: string(img.ManifestDigest)}, nil
}

// plan returns the stages the target needs, in Dockerfile order; with
// AllStages, every stage up to the target.
func (b *builder) plan(target *stage) ([]*stage, error) {
	need := map[int]bool{}
	if b.o.AllStages {
		for _, s := range b.df.stages[:target.index] {
			need[s.index] = true
		}
	}
	var visit func(s *stage) error
	seen := map[int]bool{}
	visit = func(s *stage) error {
		if seen[s.index] {
			return nil
		}
		seen[s.index], need[s.index] = true, true
		deps, err := b.deps(s)
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d); err != nil {
				return err
			}
		}
		return nil
	}
	if err := visit(target); err != nil {
		return nil, err
	}
	var out []*stage
	for _, s := range b.df.stages {
		if need[s.index] {
			out = append(out, s)
		}
	}
	return out, nil
}

// runStages starts every needed stage; each waits for the stages it
// reads. It returns the target's image, or the first error.
func (b *builder) runStages(ctx context.Context, needed []*stage, target *stage) (store.Image, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	for _, s := range needed {
		b.results[s.index] = &stageResult{done: make(chan struct{})}
	}
	b.out.multi = len(needed) > 1
	b.out.pos, b.out.n = map[int]int{}, len(needed)
	for i, s := range needed {
		b.out.pos[s.index] = i + 1
	}
	var wg sync.WaitGroup
	for _, s := range needed {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := b.results[s.index]
			r.image, r.err = b.runStage(ctx, s, s == target, len(needed))
			if r.err != nil {
				cancel(r.err)
			}
			close(r.done)
		}()
	}
	wg.Wait()
	var errs []error
	for _, s := range needed {
		if err := b.results[s.index].err; err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return store.Image{}, errs[0]
	}
	if err := context.Cause(ctx); err != nil {
		return store.Image{}, err
	}
	return b.results[target.index].image, nil
}

// waitStage waits for stage s's result.
func (b *builder) waitStage(ctx context.Context, s *stage) (store.Image, error) {
	r, ok := b.results[s.index]
	if !ok {
		return store.Image{}, fmt.Errorf("%w: stage %s was not planned", ErrNoStage, s.label())
	}
	select {
	case <-r.done:
		if r.err != nil {
			return store.Image{}, fmt.Errorf("stage %s failed: %w", s.label(), context.Canceled)
		}
		return r.image, nil
	case <-ctx.Done():
		return store.Image{}, context.Cause(ctx)
	}
}

// acquire takes one of the --jobs slots.
func (b *builder) acquire(ctx context.Context) error {
	select {
	case b.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (b *builder) release() { <-b.sem }

// hold notes a step image the store holds for this build (see
// container.CommitOptions.Hold): it stays until the build ends, tagged
// or cached by then, whatever another kiln prunes meanwhile.
func (b *builder) hold(img store.Image) {
	b.mu.Lock()
	b.held = append(b.held, img.ID)
	b.mu.Unlock()
}

func (b *builder) releaseImages(ctx context.Context) {
	b.mu.Lock()
	ids := b.held
	b.held = nil
	b.mu.Unlock()
	if err := b.st.ReleaseImages(ctx, ids...); err != nil && b.o.Logger != nil {
		b.o.Logger.Warn("releasing the build's images", "error", err)
	}
}

// removeStageImages drops the unnamed images of intermediate stages that
// the cache does not keep (builds without --layers).
func (b *builder) removeStageImages(ctx context.Context, keep string) {
	b.mu.Lock()
	ids := b.cleanup
	b.mu.Unlock()
	for _, id := range ids {
		if id == keep {
			continue
		}
		if err := b.st.DeleteImage(ctx, id); err != nil && b.o.Logger != nil {
			b.o.Logger.Debug("removing stage image", "image", id, "error", err)
		}
	}
	if len(ids) > 0 {
		_ = b.st.GC(ctx)
	}
}

// namedContext returns the --build-context name ref stands for: ref
// itself, or the name of the stage ref numbers (before limit) when a
// context of that name replaces the stage.
func (b *builder) namedContext(ref string, limit int) (string, bool) {
	if _, ok := b.o.Contexts[ref]; ok {
		return ref, true
	}
	if s, ok := b.df.lookupStage(ref, limit); ok && s.name != "" {
		if _, ok := b.o.Contexts[s.name]; ok {
			return s.name, true
		}
	}
	return "", false
}

// imageRef strips the image prefix of a --build-context value:
// docker-image:// (BuildKit's), container-image:// or docker://
// (Buildah's).
func imageRef(v string) (string, bool) {
	for _, p := range []string{"docker-image://", "container-image://", "docker://"} {
		if ref, ok := strings.CutPrefix(v, p); ok {
			return ref, true
		}
	}
	return v, false
}
