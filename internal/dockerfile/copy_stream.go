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
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store"
)

// A COPY or ADD in a build with --layers (the default) is made without a
// container: its layer is the tar of what it copies, written straight
// from its sources (copy_plan.go, copy_emit.go) into the store as a blob
// (store.AddTarLayer), hashed for the diff ID on the way. No file is
// created: the layer's files are made when something needs them (a RUN,
// a mount). On a cold build the sources are read once: the content
// digests the cache key needs are taken while the tar is written.
//
// COPY --link makes its layer against an empty tree and keys it without
// the layers below: a change below does not invalidate it, and its layer
// is placed on whatever is below (store.RebaseLayer).

// Test hooks: testForceContainerCopy runs every COPY in a container;
// testHookFallback learns why a COPY runs in one.
var (
	testForceContainerCopy bool
	testHookFallback       func(step string, err error)
)

// streamCopy runs a COPY or ADD as a tar stream, or returns errNoStream
// (having done nothing) when it must run in a container.
func (r *stageRun) streamCopy(ctx context.Context, sp copySpec, from copyFrom, used map[string]struct{}, staged string) error {
	cache := r.b.o.Cache
	// Without --layers the stage's changes are one layer at its end: a
	// COPY can be that layer only when it is the stage's only change.
	if testForceContainerCopy || r.dirty || !cache.Layers && r.step != r.total {
		return errNoStream
	}
	mode, err := parseChmod(sp.chmod)
	if err != nil {
		return errNoStream // the container's copy says why
	}
	srcs := sp.sd.SourcePaths
	src, err := r.copySource(ctx, sp, from)
	if err != nil {
		return err
	}
	defer src.close()
	if src.fs == nil || sp.link && !numericOwner(sp.chown) {
		// --parents in another stage's tree; --link naming a user.
		return errNoStream
	}
	if sp.from == "" {
		for _, s := range localOnly(srcs) {
			if err := checkSource(s); err != nil {
				return err
			}
		}
	}
	r.lastText = sp.text
	if r.cur.ID != "" && len(r.hits) > 0 {
		// As container() notices it: the image a hit moved to is gone.
		if _, err := r.b.st.Image(ctx, r.cur.ID); errors.Is(err, store.ErrImageUnknown) {
			return fmt.Errorf("%w: %w", errCacheVanished, err)
		}
	}
	r.b.bctx.keepStats()
	defer r.b.bctx.dropStats()
	lower := r.cur.TopLayer
	if sp.link {
		lower = ""
	}
	ops, err := r.copyOps(sp, srcs, staged, src, mode)
	if err != nil {
		return err
	}
	// What the copy writes, worked out from the walk of its sources; the
	// key takes the stat data of that walk, and the digests the build
	// context remembers (on a cold build, those the tar's one pass takes).
	start := time.Now()
	u, err := r.planCopy(ctx, lower, ops)
	if err != nil {
		return err
	}
	return r.storeCopy(ctx, &plannedCopy{sp: sp, from: from, srcs: srcs, used: used, staged: staged, u: u, walked: time.Since(start)})
}

// plannedCopy is a COPY worked out on a virtual upper directory.
type plannedCopy struct {
	sp     copySpec
	from   copyFrom
	srcs   []string
	used   map[string]struct{}
	staged string
	u      *upper
	walked time.Duration // planning: the walk of the sources
}

// keys are the step's cache key and, for --link, its key without the
// layers below; with knownOnly, from remembered digests only
// (errSumUnknown).
func (r *stageRun) copyKeys(c *plannedCopy, knownOnly bool) (key, linkKey string, err error) {
	parts, err := r.copyParts(c.sp, c.from, c.srcs, c.staged, c.used, knownOnly)
	if err != nil {
		return "", "", err
	}
	if c.sp.link {
		linkKey = r.keyOn("link", c.sp.text, parts)
	}
	return r.key(c.sp.text, parts), linkKey, nil
}

// storeCopy takes a planned COPY from the cache, or stores its layer and
// the step's image.
func (r *stageRun) storeCopy(ctx context.Context, c *plannedCopy) error {
	cache := r.b.o.Cache
	lookups := cache.Layers && !cache.NoCache
	key, linkKey, err := r.copyKeys(c, true)
	known := !errors.Is(err, errSumUnknown)
	if err != nil && known {
		return err
	}
	if known && lookups {
		if hit, err := r.lookupStep(ctx, key); err != nil || hit {
			return err
		}
		if c.sp.link {
			if done, err := r.linkHit(ctx, linkKey, key, c.sp.text); err != nil || done {
				return err
			}
		}
	}
	var sums fileSums
	if !known {
		sums = r.b.bctx
	}
	keyed := time.Now()
	l, err := r.writeCopyLayer(ctx, r.cur.TopLayer, c, sums)
	if errors.Is(err, store.ErrBlobUnknown) {
		// Another build of this process made the same layer's files and
		// dropped the blob before this one recorded it: write it again.
		l, err = r.writeCopyLayer(ctx, r.cur.TopLayer, c, sums)
	}
	if err == nil && r.b.o.Logger != nil {
		r.b.o.Logger.Debug("copy streamed into a layer", "step", r.lastText, "bytes", l.Size,
			"walked", c.walked, "keyed", keyed.Sub(c.u.now)-c.walked, "written", time.Since(keyed))
	}
	if err != nil {
		return err
	}
	defer r.b.st.Release(context.WithoutCancel(ctx), l.ID)
	if !known {
		if key, linkKey, err = r.copyKeys(c, false); err != nil {
			return err
		}
		if lookups {
			if hit, err := r.lookupStep(ctx, key); err != nil || hit {
				return err
			}
		}
	}
	img, err := r.layerImage(ctx, c.sp.text, l)
	if err != nil {
		return err
	}
	if !cache.Layers {
		// The stage's one layer, as finish would commit it.
		if !r.final {
			r.b.mu.Lock()
			r.b.cleanup = append(r.b.cleanup, img.ID)
			r.b.mu.Unlock()
		}
		return r.useImage(ctx, img)
	}
	if linkKey != "" {
		if err := r.b.st.CachePut(ctx, linkKey, img.ID); err != nil {
			return err
		}
	}
	return r.stepDone(ctx, key, img)
}

// copySourceTree is where a COPY reads: a host directory (root), or a
// stage's or image's tree (fs is a viewFS).
type copySourceTree struct {
	fs    srcFS
	root  string // "" for the build context
	view  *store.PathView
	other bool // another stage or image: owners are kept
}

func (t copySourceTree) close() {
	if t.view != nil {
		t.view.Close()
	}
}

// copyFrom is what --from names, resolved: a stage's or image's image,
// or a named context's directory.
type copyFrom struct {
	img store.Image
	dir string
}

// copySource opens what --from names, without mounting anything.
func (r *stageRun) copySource(ctx context.Context, sp copySpec, from copyFrom) (copySourceTree, error) {
	if sp.from == "" {
		return copySourceTree{fs: hostFS{r.b.bctx}}, nil
	}
	if from.dir != "" {
		return copySourceTree{fs: hostFS{r.b.bctx}, root: from.dir}, nil
	}
	if sp.parents {
		return copySourceTree{}, nil
	}
	v, err := r.b.st.OpenPathView(ctx, from.img.TopLayer)
	if err != nil {
		return copySourceTree{}, err
	}
	return copySourceTree{fs: viewFS{v}, root: "/", view: v, other: true}, nil
}

// copyOps are the copier runs of the step, as copyFiles makes them:
// the sources, then staged heredocs and downloads, then git trees.
func (r *stageRun) copyOps(sp copySpec, srcs []string, staged string, src copySourceTree, mode *fs.FileMode) ([]copyOp, error) {
	var ops []copyOp
	add := func(fsys srcFS, root string, other bool, names []string, addArchives bool) error {
		ex, err := r.excluder(root, sp.excludes)
		if err != nil {
			return err
		}
		dir := root
		if root == "" {
			dir = r.b.bctx.dir
		}
		op := copyOp{src: fsys, root: dir, dest: sp.sd.DestPath, workdir: r.config().Config.WorkingDir, mode: mode,
			add: addArchives, exclude: ex, chown: sp.chown, other: other}
		if !sp.parents {
			op.sources = names
			ops = append(ops, op)
			return nil
		}
		for _, s := range names {
			more, err := parentsOps(op, s, sp.sd.DestPath)
			if err != nil {
				return err
			}
			ops = append(ops, more...)
		}
		return nil
	}
	if len(srcs) > 0 {
		if err := add(src.fs, src.root, src.other, srcs, sp.add); err != nil {
			return nil, err
		}
	}
	if staged == "" {
		return ops, nil
	}
	if names := stagedNames(staged); len(names) > 0 {
		if err := add(hostFS{r.b.bctx}, staged, true, names, false); err != nil {
			return nil, err
		}
	}
	trees, _ := os.ReadDir(filepath.Join(staged, stagedTrees))
	for _, t := range trees {
		if err := add(hostFS{r.b.bctx}, staged, true, []string{filepath.Join(stagedTrees, t.Name())}, false); err != nil {
			return nil, err
		}
	}
	return ops, nil
}

// parentsOps are the runs of COPY --parents for source s of a host
// directory (copyParents).
func parentsOps(op copyOp, s, dest string) ([]copyOp, error) {
	base := op.root
	clean := strings.TrimPrefix(s, "./")
	if prefix, rest, ok := strings.Cut(clean, "/./"); ok {
		base, clean = filepath.Join(base, prefix), rest
	}
	matches, err := filepath.Glob(filepath.Join(base, clean))
	if err != nil || len(matches) == 0 {
		return nil, fmt.Errorf("%w: copy source %q matches nothing", errNoStream, s)
	}
	var out []copyOp
	for _, m := range matches {
		rel, _ := filepath.Rel(base, m)
		fromRoot, _ := filepath.Rel(op.root, m)
		po := op
		po.sources = []string{fromRoot}
		po.dest = path.Join(dest, path.Dir(filepath.ToSlash(rel))) + "/"
		if fi, err := os.Stat(m); err == nil && fi.IsDir() {
			po.dest = path.Join(dest, filepath.ToSlash(rel)) + "/"
		}
		out = append(out, po)
	}
	return out, nil
}

// planCopy runs ops on the tree of layer lower, on a virtual upper
// directory; errNoStream when it takes a container.
func (r *stageRun) planCopy(ctx context.Context, lower string, ops []copyOp) (*upper, error) {
	view, err := r.b.st.OpenPathView(ctx, lower)
	if err != nil {
		return nil, err
	}
	defer view.Close()
	u := newUpper(view, time.Now())
	for _, op := range ops {
		if op.owner, err = u.resolveOwner(ctx, op.chown, op.other); err == nil {
			err = u.copy(ctx, op)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			// The container's copy does it, or says why it cannot.
			r.logFallback(err)
			return nil, errNoStream
		}
	}
	u.lower = nil // closed
	return u, nil
}

// writeCopyLayer stores the tar of what c's upper directory holds as a
// layer on parent.
func (r *stageRun) writeCopyLayer(ctx context.Context, parent string, c *plannedCopy, sums fileSums) (store.Layer, error) {
	items := c.u.items(r.b.o.Commit.Timestamp)
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeTar(ctx, pw, items, sums)) }()
	l, err := r.b.st.AddTarLayer(ctx, parent, pr)
	pr.CloseWithError(io.ErrClosedPipe)
	return l, err
}

func (r *stageRun) logFallback(err error) {
	if testHookFallback != nil {
		testHookFallback(r.lastText, err)
	}
	if r.b.o.Logger != nil {
		r.b.o.Logger.Debug("copy runs in a container", "step", r.lastText, "reason", err)
	}
}

// layerImage records the image of the current config with layer l on
// top, as a commit of the step would.
func (r *stageRun) layerImage(ctx context.Context, text string, l store.Layer) (store.Image, error) {
	cfg := r.config().Clone()
	if r.ctr == nil && r.clearOnBuild {
		cfg.Config.OnBuild = nil
	}
	created := time.Now().UTC()
	if t := r.b.o.Commit.Timestamp; t != nil {
		created = t.UTC()
	}
	cfg.RootFS.Type = "layers"
	cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.DiffID)
	cfg.History = append(cfg.History, image.History{Created: &created, CreatedBy: createdBy(text)})
	cfg.Created = &created
	img, err := container.WriteImage(ctx, r.b.st, cfg, l.ID, image.FormatDocker)
	if err == nil {
		r.b.hold(img)
	}
	return img, err
}

// lookupStep is do's cache lookup: on a hit the stage moves to the
// cached image.
func (r *stageRun) lookupStep(ctx context.Context, key string) (bool, error) {
	img, ok, err := r.b.st.CacheLookup(ctx, key)
	if err != nil {
		return false, err
	}
	if !ok {
		if img, ok, err = r.fetchRemote(ctx, key); err != nil || !ok {
			return false, err
		}
	}
	err = r.useImage(ctx, img)
	if errors.Is(err, store.ErrBlobUnknown) {
		return false, nil // removed by another process since the lookup
	}
	if err != nil {
		return false, err
	}
	r.reportHit(img)
	r.hits = append(r.hits, key)
	r.b.recordStep(key, img)
	if testHookAfterHit != nil {
		testHookAfterHit(img)
	}
	return true, nil
}

// stepDone moves the stage to img, a step's new image, and caches it.
func (r *stageRun) stepDone(ctx context.Context, key string, img store.Image) error {
	if err := r.useImage(ctx, img); err != nil {
		return err
	}
	if err := r.b.st.CachePut(ctx, key, img.ID); err != nil {
		return err
	}
	r.b.recordStep(key, img)
	r.reportStep(img)
	return nil
}

// linkHit uses the layer a COPY --link with the same sources made on
// other layers: placed on the current ones, with the current config.
func (r *stageRun) linkHit(ctx context.Context, linkKey, key, text string) (bool, error) {
	cached, ok, err := r.b.st.CacheLookup(ctx, linkKey)
	if err != nil || !ok {
		return false, err
	}
	top, err := r.b.st.Layer(ctx, cached.TopLayer)
	if errors.Is(err, store.ErrLayerUnknown) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	l, err := r.b.st.RebaseLayer(ctx, r.cur.TopLayer, top)
	if err != nil {
		return false, err
	}
	defer r.b.st.Release(context.WithoutCancel(ctx), l.ID)
	img, err := r.layerImage(ctx, text, l)
	if err != nil {
		return false, err
	}
	r.b.out.line(r.s, len(r.b.df.stages), "--> Using linked layer of %s", shortID(cached.ID))
	return true, r.stepDone(ctx, key, img)
}

// keyOn is key with parent standing for the image below.
func (r *stageRun) keyOn(parent, text string, parts []string) string {
	h := sha256.New()
	ts := ""
	if t := r.b.o.Commit.Timestamp; t != nil {
		ts = t.UTC().Format(time.RFC3339Nano)
	}
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%t\x00%s\x00", cacheVersion, parent, ts, r.clearOnBuild, text)
	for _, p := range parts {
		fmt.Fprintf(h, "%s\x00", p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// errSumUnknown: a file's digest is not remembered.
var errSumUnknown = errors.New("file digest not known")

// copyParts are the parts of a COPY's cache key, as copyFiles makes them.
// With knownOnly, only remembered file digests are used (errSumUnknown).
func (r *stageRun) copyParts(sp copySpec, from copyFrom, srcs []string, staged string, used map[string]struct{}, knownOnly bool) ([]string, error) {
	sum := r.b.bctx.fileSum
	if knownOnly {
		sum = r.b.bctx.knownSum
	}
	parts := append(r.usedArgs(used), "chown:"+sp.chown, "chmod:"+sp.chmod, fmt.Sprintf("add:%t", sp.add), "excl:"+strings.Join(sp.excludes, "\x01"))
	if len(srcs) > 0 {
		var d string
		var err error
		switch {
		case sp.from == "":
			d, err = r.b.bctx.digestWith("", localOnly(srcs), sum)
		case from.dir != "":
			d, err = r.b.bctx.digestWith(from.dir, srcs, sum)
		default:
			s := sha256.Sum256([]byte(from.img.ID + "\x00" + strings.Join(srcs, "\x00")))
			d = hex.EncodeToString(s[:])
		}
		if err != nil {
			return nil, err
		}
		parts = append(parts, "src:"+d)
	}
	if staged != "" {
		d, err := r.b.bctx.digestWith(staged, []string{"."}, sum)
		if err != nil {
			return nil, err
		}
		parts = append(parts, "staged:"+d)
	}
	return parts, nil
}

// keepStats starts keeping what streamed copies stat (noteInfo) for the
// digests of their cache keys; dropStats ends it.
func (bc *buildContext) keepStats() {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	if bc.statUsers == 0 {
		bc.stats = map[string]fs.FileInfo{}
	}
	bc.statUsers++
}

func (bc *buildContext) dropStats() {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	if bc.statUsers--; bc.statUsers == 0 {
		bc.stats = nil
	}
}

// noteInfo keeps what a streamed copy's walk learnt of host path p.
func (bc *buildContext) noteInfo(p string, fi fs.FileInfo) {
	bc.mu.Lock()
	if bc.stats != nil {
		bc.stats[p] = fi
	}
	bc.mu.Unlock()
}

// takenInfo is what a streamed copy's walk took of p, if anything.
func (bc *buildContext) takenInfo(p string) (fs.FileInfo, bool) {
	if bc == nil {
		return nil, false
	}
	bc.mu.Lock()
	fi, ok := bc.stats[p]
	bc.mu.Unlock()
	return fi, ok
}

// info is d's FileInfo, as the step's walk took it when it did.
func (bc *buildContext) info(p string, d fs.DirEntry) (fs.FileInfo, error) {
	bc.mu.Lock()
	fi, ok := bc.stats[p]
	bc.mu.Unlock()
	if ok {
		return fi, nil
	}
	return d.Info()
}

// knownSum is fileSum for a file whose digest is remembered, else
// errSumUnknown.
func (bc *buildContext) knownSum(p string, fi fs.FileInfo) (string, error) {
	if err := bc.waitRemembered(); err != nil {
		return "", err
	}
	key := fileKey(fi)
	bc.mu.Lock()
	old, ok := bc.hashes[p]
	bc.mu.Unlock()
	if ok && old.Size == key.Size && old.MTime == key.MTime && old.CTime == key.CTime && old.Ino == key.Ino {
		return old.Sum, nil
	}
	return "", errSumUnknown
}

func fileKey(fi fs.FileInfo) store.FileHash {
	key := store.FileHash{Size: fi.Size(), MTime: fi.ModTime().UnixNano()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		key.Ino = sys.Ino
		key.CTime = sys.Ctim.Nano()
	}
	return key
}

// sumFor implements fileSums: host files whose digest is not known.
func (bc *buildContext) sumFor(f *ufile) bool {
	if !f.src.onHost() || bc.waitRemembered() != nil {
		return false
	}
	bc.mu.Lock()
	old, ok := bc.hashes[f.path]
	bc.mu.Unlock()
	i := f.info
	return !ok || old.Size != i.size || old.MTime != i.mtime.UnixNano() || old.CTime != i.ctime || old.Ino != i.ino
}

// noteSum implements fileSums: the digest is remembered as fileSum
// remembers what it reads.
func (bc *buildContext) noteSum(f *ufile, sum string) {
	i := f.info
	h := store.FileHash{Size: i.size, MTime: i.mtime.UnixNano(), CTime: i.ctime, Ino: i.ino, Sum: sum}
	bc.mu.Lock()
	bc.hashes[f.path], bc.fresh[f.path] = h, h
	bc.mu.Unlock()
}

// parseChmod parses --chmod as the copier does.
func parseChmod(s string) (*fs.FileMode, error) {
	if s == "" {
		return nil, nil
	}
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o7777 {
		return nil, fmt.Errorf("bad --chmod %q: want an octal mode such as 755", s)
	}
	fm := fs.FileMode(m) // as the copier converts it: set-id bits fall away
	return &fm, nil
}

// numericOwner reports whether --chown names ids, not names.
func numericOwner(chown string) bool {
	if chown == "" {
		return true
	}
	u, g, _ := strings.Cut(chown, ":")
	for _, s := range []string{u, g} {
		if s == "" {
			continue
		}
		if _, err := strconv.Atoi(s); err != nil {
			return false
		}
	}
	return true
}
