package dockerfile

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store"
)

// stageRun executes one stage. Steps that hit the cache only move cur;
// the first miss makes a working container from cur, and later steps
// continue on it, committing each step when the cache is on.
type stageRun struct {
	b     *builder
	s     *stage
	final bool
	lex   *shell.Lex
	args  *argSet
	cur   store.Image   // the image after the last step; ID "" is scratch
	cfg   *image.Config // cur's config while ctr is nil
	ctr   *container.Container
	hits  []string // cache keys hit, touched at the end
	step  int
	total int
	dirty bool // ctr has changes no image holds yet (no --layers)
	// clearOnBuild drops the base image's triggers from the child's config.
	clearOnBuild bool
	lastText     string
	cmdSet       bool // a CMD ran in this stage
	// pathAdded is the ID of the base image whose config got the default
	// PATH: while cur is that image, the stage's image is not cur.
	pathAdded string
	// platform is the stage's: FROM --platform's, else the build's.
	platform ocispec.Platform
	// headed is set once the stage's first STEP line is printed.
	headed bool
	// last is set while the stage's last step runs, lastHit when that
	// step was a cache hit: the final stage prints COMMIT for it.
	last, lastHit bool
	// base is the image the stage starts from (through earlier stages);
	// baseID is the image FROM gave this stage ("" for scratch).
	base   baseImage
	baseID string
	// baseIsStage: FROM named an earlier stage.
	baseIsStage bool
	// verb is the instruction running (COPY, RUN, ...), for messages.
	verb string
}

func (b *builder) runStage(ctx context.Context, s *stage, final bool, _ int) (img store.Image, err error) {
	r := &stageRun{b: b, s: s, final: final, lex: b.df.lexer(), args: newArgSet(), platform: b.o.Platform}
	base, desc, err := r.resolveBase(ctx)
	if err != nil {
		return store.Image{}, err
	}
	// Wait for every stage this one reads before taking a job slot, so
	// that a stage never holds a slot its dependency needs.
	deps, err := b.deps(s)
	if err != nil {
		return store.Image{}, err
	}
	for _, d := range deps {
		if _, err := b.waitStage(ctx, d); err != nil {
			return store.Image{}, err
		}
	}
	if err := b.acquire(ctx); err != nil {
		return store.Image{}, err
	}
	defer b.release()
	defer func() {
		if r.ctr != nil && ((err != nil && b.o.Commit.KeepOnFailure) || (err == nil && b.o.Commit.KeepOnSuccess)) {
			if kerr := b.st.KeepContainer(context.WithoutCancel(ctx), r.ctr.ID()); kerr != nil {
				err = errors.Join(err, kerr)
			}
			b.out.line(s, len(b.df.stages), "--> keeping container %s", r.ctr.Name())
			return
		}
		r.removeContainer(context.WithoutCancel(ctx))
	}()
	if err := r.useImage(ctx, base); err != nil {
		return store.Image{}, err
	}
	r.baseID = base.ID
	b.results[s.index].base = r.base
	r.addDefaultPath()
	cmds, err := r.triggers()
	if err != nil {
		return store.Image{}, err
	}
	cmds = append(cmds, s.commands...)
	// The options' own config changes (--label, --env, ...) are a step of
	// the final stage that is not shown, as Buildah applies them in its
	// last commit.
	extra := r.finalConfig()
	r.total = 1 + len(cmds)
	r.header(desc)
	for i, c := range cmds {
		r.step++
		r.last = extra == nil && i == len(cmds)-1
		b.out.step(s, len(b.df.stages), r.step, r.total, c.(fmt.Stringer).String())
		usage := startUsage()
		if err := r.exec(ctx, c); err != nil {
			return store.Image{}, fmt.Errorf("building at STEP \"%s\": %w", stepText(c), err)
		}
		if b.o.Run.Rusage != nil {
			// Each step's, as Buildah logs them.
			fmt.Fprintln(b.o.Run.Rusage, usage.since())
		}
	}
	if extra != nil {
		r.last = true
		if err := r.configStep(ctx, extra.text, extra.parts, extra.apply); err != nil {
			return store.Image{}, err
		}
	}
	return r.finish(ctx)
}

// resolveBase finds the image FROM names: an earlier stage, a named
// build context, scratch, or an image.
func (r *stageRun) resolveBase(ctx context.Context) (store.Image, string, error) {
	res, err := expand(r.lex, r.s.base, envGetter{args: fromArgs(r.b.df, r.s, r.b.global, r.b.o.Args)})
	if err != nil {
		return store.Image{}, "", fmt.Errorf("%s:%d: FROM %s: %w", r.b.df.name, r.s.line, r.s.base, err)
	}
	name := res.Result
	if r.s.index == 0 && r.b.o.From != "" {
		name = r.b.o.From
	}
	if err := r.stagePlatform(); err != nil {
		return store.Image{}, "", err
	}
	shown := name
	if v, named := r.b.o.Contexts[name]; named {
		if ref, isImage := imageRef(v); isImage {
			shown = ref // --build-context NAME=docker-image://REF, as Buildah shows it
		}
	}
	desc := "FROM " + shown
	if r.s.name != "" {
		desc += " AS " + r.s.name
	}
	r.total = 1 + len(r.s.commands)
	if name == "" {
		return store.Image{}, "", fmt.Errorf("%s:%d: FROM needs an image: %q expands to nothing", r.b.df.name, r.s.line, r.s.base)
	}
	if _, named := r.b.o.Contexts[name]; !named {
		if dep, ok := r.b.df.lookupNamed(name, r.s.index); ok {
			img, err := r.b.waitStage(ctx, dep)
			if err == nil {
				r.base = r.b.results[dep.index].base
				r.baseIsStage = true
			}
			return img, desc, err
		}
	}
	if strings.EqualFold(name, "scratch") {
		return store.Image{}, desc, nil
	}
	r.header(desc) // before a pull prints its progress, as Buildah does
	img, err := r.b.resolveImage(ctx, name, r.platform)
	if errors.Is(err, image.ErrBadReference) {
		return img, desc, fmt.Errorf("%s:%d: FROM %s: invalid reference format: %w", r.b.df.name, r.s.line, name, err)
	}
	if err != nil {
		return img, desc, err
	}
	r.base = baseImage{digest: string(img.ManifestDigest), name: baseName(name, img)}
	return img, desc, nil
}

// baseName is the full name of the image FROM name resolved to: the
// normalized name when the image has it, else its first name.
func baseName(name string, img store.Image) string {
	if n, err := image.NormalizeName(name); err == nil && slices.Contains(img.Names, n) {
		return n
	}
	if len(img.Names) > 0 {
		return img.Names[0]
	}
	return ""
}

// header prints the stage's first STEP line, once.
func (r *stageRun) header(desc string) {
	if r.headed {
		return
	}
	r.headed, r.step = true, 1
	r.b.out.step(r.s, len(r.b.df.stages), 1, r.total, desc)
}

// resolveImage finds an image by reference for platform p, through
// --build-context and the caller's resolver.
func (b *builder) resolveImage(ctx context.Context, ref string, p ocispec.Platform) (store.Image, error) {
	if v, ok := b.o.Contexts[ref]; ok {
		r, isImage := imageRef(v)
		if !isImage {
			return store.Image{}, fmt.Errorf("build context %q is a directory, not an image", ref)
		}
		ref = r
	}
	if b.o.Resolve != nil {
		return b.o.Resolve(ctx, ref, p)
	}
	return b.st.LookupImage(ctx, ref)
}

// useImage makes img the current state and drops any working container.
// The state changes only once img's config has been read.
func (r *stageRun) useImage(ctx context.Context, img store.Image) error {
	cfg := scratchConfig(r.platform)
	if img.ID != "" {
		raw, err := r.b.st.ImageConfig(img)
		if err != nil {
			return err
		}
		if cfg, err = image.ParseConfig(raw); err != nil {
			return err
		}
	}
	r.removeContainer(ctx)
	r.cur, r.cfg = img, cfg
	return nil
}

// scratchConfig is the config FROM scratch starts with: BuildKit's empty
// image (dockerfile2llb emptyImage), with the default PATH and working
// directory "/". `kiln from scratch` starts with an empty config instead,
// as `buildah from scratch` does.
func scratchConfig(p ocispec.Platform) *image.Config {
	p = normalPlatform(p)
	return &image.Config{
		OS: p.OS, Architecture: p.Architecture, Variant: p.Variant, RootFS: image.RootFS{Type: "layers"},
		Config: image.ContainerConfig{Env: []string{image.DefaultPath}, WorkingDir: "/"},
	}
}

// addDefaultPath gives the stage Docker's default PATH when its base's
// config has none, as BuildKit does for every stage (dockerfile2llb:
// "make sure that PATH is always set"): RUN finds its commands and the
// image keeps the entry.
func (r *stageRun) addDefaultPath() {
	for _, kv := range r.cfg.Config.Env {
		if strings.HasPrefix(kv, "PATH=") {
			return
		}
	}
	r.cfg.Config.Env = append(r.cfg.Config.Env, image.DefaultPath)
	r.pathAdded = r.cur.ID
}

// config is the current config: the container's once there is one.
func (r *stageRun) config() *image.Config {
	if r.ctr != nil {
		return r.ctr.State.Config
	}
	return r.cfg
}

// container returns the working container, making it from cur.
func (r *stageRun) container(ctx context.Context) (*container.Container, error) {
	if r.ctr != nil {
		return r.ctr, nil
	}
	ref := "scratch"
	if r.cur.ID != "" {
		ref = r.cur.ID
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	name := fmt.Sprintf("kiln-build-%s-%s", r.s.label(), hex.EncodeToString(rnd[:]))
	c, err := container.New(ctx, r.b.st, container.NewOptions{Image: ref, Name: name, Temporary: true})
	if errors.Is(err, store.ErrImageUnknown) && len(r.hits) > 0 {
		return nil, fmt.Errorf("%w: %w", errCacheVanished, err)
	}
	if err != nil {
		return nil, err
	}
	c.State.Config = r.cfg.Clone()
	if r.clearOnBuild {
		c.State.Config.Config.OnBuild = nil
	}
	r.ctr = c
	return c, nil
}

func (r *stageRun) removeContainer(ctx context.Context) {
	if r.ctr == nil {
		return
	}
	if err := r.ctr.Remove(ctx); err != nil && r.b.o.Logger != nil {
		r.b.o.Logger.Warn("removing build container", "container", r.ctr.Name(), "error", err)
	}
	r.ctr = nil
}

// exec runs one instruction.
func (r *stageRun) exec(ctx context.Context, c instructions.Command) error {
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	r.verb = strings.ToUpper(c.Name())
	switch c := c.(type) {
	case *instructions.ArgCommand:
		return r.arg(c)
	case *instructions.RunCommand:
		return r.runStep(ctx, c)
	case *instructions.CopyCommand:
		return r.copyStep(ctx, c)
	case *instructions.AddCommand:
		return r.addStep(ctx, c)
	}
	return r.configInstruction(ctx, c)
}

// arg brings ARGs into the stage's scope.
func (r *stageRun) arg(c *instructions.ArgCommand) error {
	for _, kv := range c.Args {
		v, err := argValue(r.lex, kv, r.args, r.b.global, r.b.o.Args, &r.b.args)
		if err != nil {
			return err
		}
		r.args.set(kv.Key, v)
	}
	return nil
}

// finish commits what is left, tags the final image and returns the
// stage's image.
func (r *stageRun) finish(ctx context.Context) (store.Image, error) {
	r.last = true
	if r.dirty || r.cur.ID == "" || r.pathAdded != "" && r.cur.ID == r.pathAdded {
		// Without a dirty container no step changed a file: scratch alone,
		// or a base whose config only got PATH, makes no layer.
		img, err := r.commit(ctx, r.lastText, r.dirty)
		if err != nil {
			return store.Image{}, err
		}
		r.cur = img
		if !r.final && !r.b.o.Cache.Layers {
			r.b.mu.Lock()
			r.b.cleanup = append(r.b.cleanup, img.ID)
			r.b.mu.Unlock()
		}
	}
	if err := r.b.st.CacheTouch(ctx, r.hits); err != nil {
		return store.Image{}, err
	}
	if !r.final {
		return r.cur, nil
	}
	if r.b.o.Commit.Squash {
		img, err := r.squash(ctx)
		if err != nil {
			return store.Image{}, err
		}
		r.cur = img
	}
	r.warnDockerOnly()
	var img store.Image
	var err error
	if r.baseID != "" && r.cur.ID == r.baseID && !r.baseIsStage && !r.b.o.Commit.Squash && !r.b.o.Commit.OmitHistory && len(r.b.o.Commit.Annotations) == 0 {
		// A stage that is only FROM an image is that image, named. (Only
		// FROM an earlier stage is that stage's image in the asked format,
		// with its base's annotations, as Buildah commits it; --annotation
		// makes a new image too.)
		img, err = r.cur, r.b.st.AddNames(ctx, r.cur.ID, r.b.o.Tags)
	} else {
		img, err = container.Reformat(ctx, r.b.st, r.cur, container.ReformatOptions{
			Format: r.b.o.Commit.Format, Annotations: r.annotations(), Names: r.b.o.Tags, OmitHistory: r.b.o.Commit.OmitHistory,
		})
	}
	if err != nil {
		return store.Image{}, err
	}
	r.cur = img
	if !(r.b.o.StepIDs && r.lastHit && len(r.b.o.Tags) == 0) {
		commit := "COMMIT"
		if r.b.o.CommitName != "" {
			commit += " " + r.b.o.CommitName
		}
		r.b.out.line(r.s, len(r.b.df.stages), "%s", commit)
	}
	r.b.out.plain("--> %s", shortID(img.ID))
	return r.cur, nil
}

// annotations are the final image's manifest annotations: the base
// image's digest and name (OCI's org.opencontainers.image.base.*, as
// Buildah records them), then --annotation.
func (r *stageRun) annotations() map[string]string {
	ann := map[string]string{}
	if r.b.o.Commit.Format == image.FormatOCI && r.base.digest != "" {
		ann[ocispec.AnnotationBaseImageDigest] = r.base.digest
		if r.base.name != "" {
			ann[ocispec.AnnotationBaseImageName] = r.base.name
		}
	}
	for _, a := range r.b.o.Commit.Annotations {
		k, v, _ := strings.Cut(a, "=")
		ann[k] = v
	}
	return ann
}

// squash replaces the final image by one with a single layer.
func (r *stageRun) squash(ctx context.Context) (store.Image, error) {
	if err := r.useImage(ctx, r.cur); err != nil {
		return store.Image{}, err
	}
	c, err := r.container(ctx)
	if err != nil {
		return store.Image{}, err
	}
	img, err := c.Commit(ctx, container.CommitOptions{
		Format: r.b.o.Commit.Format, Timestamp: r.b.o.Commit.Timestamp,
		CreatedBy: createdBy(r.lastText), Squash: true, Hold: true,
	})
	if err == nil {
		r.b.hold(img)
	}
	return img, err
}

// stagePlatform reads FROM --platform into the stage's platform. A
// platform other than this machine's is built without emulation: its
// RUN steps fail unless the kernel runs its binaries (binfmt_misc).
func (r *stageRun) stagePlatform() error {
	if r.s.platform == "" {
		return nil
	}
	p, err := expandWord(r.lex, r.s.platform, envGetter{args: r.b.global})
	if err != nil {
		return err
	}
	if r.platform, err = parsePlatform(p); err != nil {
		return fmt.Errorf("%s:%d: FROM --platform: %w", r.b.df.name, r.s.line, err)
	}
	return nil
}

// warnDockerOnly says which fields an OCI image drops, as Buildah does.
func (r *stageRun) warnDockerOnly() {
	if r.b.o.Commit.Format != image.FormatOCI || r.b.o.Logger == nil {
		return
	}
	for _, w := range r.config().OCIWarnings() {
		r.b.o.Logger.Warn(w)
	}
}

// stepText is an instruction as Buildah's "building at STEP" error shows
// it: as written, its keyword in upper case, quotes unescaped.
func stepText(c instructions.Command) string {
	text := c.(fmt.Stringer).String()
	word, rest, _ := strings.Cut(text, " ")
	return strings.TrimSpace(strings.ToUpper(word) + " " + rest)
}
