package dockerfile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/patternmatcher"
	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/internal/container"
)

// copySpec is what COPY and ADD have in common.
type copySpec struct {
	text       string
	sd         instructions.SourcesAndDest
	from       string
	chown      string
	chmod      string
	excludes   []string
	parents    bool
	add        bool // ADD: archives unpack, URLs download, git repositories clone
	checksum   string
	keepGitDir bool
	link       bool // --link: the layer does not depend on the layers below
}

// expandable is what COPY and ADD expand: words, then heredoc bodies.
type expandable interface {
	instructions.SupportsSingleWordExpansion
	instructions.SupportsSingleWordExpansionRaw
}

// expandCopy expands a COPY or ADD and returns the expander it used.
func (r *stageRun) expandCopy(c expandable, used map[string]struct{}) (func(string) (string, error), error) {
	exp := r.expander(used)
	if err := c.Expand(exp); err != nil {
		return nil, err
	}
	return exp, c.ExpandRaw(exp)
}

func (r *stageRun) copyStep(ctx context.Context, c *instructions.CopyCommand) error {
	used := map[string]struct{}{}
	exp, err := r.expandCopy(c, used)
	if err != nil {
		return err
	}
	from, err := exp(c.From)
	if err != nil {
		return err
	}
	for _, src := range c.SourcePaths {
		if from == "" && container.IsURL(src) {
			return fmt.Errorf("source can't be a URL for COPY: %s (ADD fetches URLs)", src) // Buildah's words
		}
	}
	sp := copySpec{text: c.String(), sd: c.SourcesAndDest, from: from, chown: c.Chown, chmod: c.Chmod, excludes: c.ExcludePatterns, parents: c.Parents, link: c.Link}
	if err := r.copyFiles(ctx, sp, used); err != nil {
		if from == "" {
			err = r.noteIgnored(err, c.SourcePaths)
		}
		return err
	}
	return nil
}

func (r *stageRun) addStep(ctx context.Context, c *instructions.AddCommand) error {
	used := map[string]struct{}{}
	if _, err := r.expandCopy(c, used); err != nil {
		return err
	}
	sp := copySpec{text: c.String(), sd: c.SourcesAndDest, chown: c.Chown, chmod: c.Chmod, excludes: c.ExcludePatterns,
		add: c.Unpack == nil || *c.Unpack, checksum: c.Checksum, keepGitDir: c.KeepGitDir != nil && *c.KeepGitDir, link: c.Link}
	if err := r.copyFiles(ctx, sp, used); err != nil {
		return r.noteIgnored(err, c.SourcePaths)
	}
	return nil
}

// copyFiles runs a COPY or ADD: sources from the context, a stage, an
// image, a named context, heredocs or URLs; keyed by their content.
func (r *stageRun) copyFiles(ctx context.Context, sp copySpec, used map[string]struct{}) error {
	if n := len(sp.sd.SourcePaths) + len(sp.sd.SourceContents); n > 1 && !strings.HasSuffix(sp.sd.DestPath, "/") {
		// Several sources go into a directory, as Buildah has it, also
		// when the destination lacks its "/" (Docker refuses that).
		sp.sd.DestPath += "/"
	}
	var cleanups []func(context.Context)
	defer func() {
		for _, f := range cleanups {
			f(context.WithoutCancel(ctx))
		}
	}()
	var from copyFrom
	if sp.from != "" {
		var err error
		if from.img, from.dir, err = r.fromImage(ctx, sp.from); err != nil {
			return err
		}
	}
	staged, err := r.stageExtraSources(ctx, &sp)
	if err != nil {
		return err
	}
	if staged != "" {
		cleanups = append(cleanups, func(context.Context) { os.RemoveAll(staged) })
	}
	// Streamed into a layer without a container, unless it cannot be.
	if err := r.streamCopy(ctx, sp, from, used, staged); !errors.Is(err, errNoStream) {
		return err
	}
	root, err := r.fromRoot(ctx, sp.from, &cleanups)
	if err != nil {
		return err
	}
	srcs := sp.sd.SourcePaths // what is left after staging URLs and heredocs
	parts := append(r.usedArgs(used), "chown:"+sp.chown, "chmod:"+sp.chmod, fmt.Sprintf("add:%t", sp.add), "excl:"+strings.Join(sp.excludes, "\x01"))
	if len(srcs) > 0 {
		d, err := r.sourceDigest(ctx, sp.from, srcs)
		if err != nil {
			return err
		}
		parts = append(parts, "src:"+d)
	}
	if staged != "" {
		d, err := r.b.bctx.digest(staged, []string{"."})
		if err != nil {
			return err
		}
		parts = append(parts, "staged:"+d)
	}
	return r.do(ctx, sp.text, parts, true, func(ctx context.Context, c *container.Container) error {
		if len(srcs) > 0 {
			if err := r.copyInto(ctx, c, sp, srcs, root, sp.add); err != nil {
				return err
			}
		}
		if staged == "" {
			return nil
		}
		if names := stagedNames(staged); len(names) > 0 {
			if err := r.copyInto(ctx, c, sp, names, staged, false); err != nil {
				return err
			}
		}
		trees, _ := os.ReadDir(filepath.Join(staged, stagedTrees))
		for _, t := range trees {
			if err := r.copyInto(ctx, c, sp, []string{filepath.Join(stagedTrees, t.Name())}, staged, false); err != nil {
				return err
			}
		}
		return nil
	})
}

// copyInto copies srcs from root ("" = the build context) to the dest.
func (r *stageRun) copyInto(ctx context.Context, c *container.Container, sp copySpec, srcs []string, root string, add bool) error {
	o := container.CopyOptions{Dest: sp.sd.DestPath, Chown: sp.chown, Chmod: sp.chmod, Add: add, Confine: true}
	ex, err := r.excluder(root, sp.excludes)
	if err != nil {
		return err
	}
	o.Exclude = ex
	if root == "" || root == r.b.bctx.dir || isNamedDir(r.b.o.Contexts, root) {
		o.ContextDir = root
		if root == "" {
			o.ContextDir = r.b.bctx.dir
		}
	} else {
		o.FromRoot = root
	}
	if !sp.parents {
		o.Sources = srcs
		return c.Copy(ctx, o)
	}
	for _, s := range srcs {
		if err := copyParents(ctx, c, o, s, sp.sd.DestPath); err != nil {
			return err
		}
	}
	return nil
}

// copyParents copies the matches of source s keeping their directories
// (COPY --parents): the path below the source root, or below a "/./"
// marker in s, is kept under dest.
func copyParents(ctx context.Context, c *container.Container, o container.CopyOptions, s, dest string) error {
	root := o.ContextDir + o.FromRoot // one of them is set
	base := root
	clean := strings.TrimPrefix(s, "./")
	if prefix, rest, ok := strings.Cut(clean, "/./"); ok {
		base, clean = filepath.Join(base, prefix), rest
	}
	matches, err := filepath.Glob(filepath.Join(base, clean))
	if err != nil || len(matches) == 0 {
		return fmt.Errorf("copy source %q: %w", s, container.ErrSourceMissing)
	}
	for _, m := range matches {
		rel, _ := filepath.Rel(base, m)
		fromRoot, _ := filepath.Rel(root, m)
		po := o
		po.Sources = []string{fromRoot}
		po.Dest = path.Join(dest, path.Dir(filepath.ToSlash(rel))) + "/"
		if fi, err := os.Stat(m); err == nil && fi.IsDir() {
			po.Dest = path.Join(dest, filepath.ToSlash(rel)) + "/"
		}
		if err := c.Copy(ctx, po); err != nil {
			return err
		}
	}
	return nil
}

func isNamedDir(contexts map[string]string, dir string) bool {
	for _, v := range contexts {
		if v == dir {
			return true
		}
	}
	return false
}

// excluder combines the ignore file (for the build context, relative to
// it) with the step's --exclude patterns (relative to the source copied,
// as BuildKit matches them).
func (r *stageRun) excluder(root string, excludes []string) (func(string, string, bool) (bool, bool), error) {
	var pm *patternmatcher.PatternMatcher
	if len(excludes) > 0 {
		var err error
		if pm, err = patternmatcher.New(excludes); err != nil {
			return nil, fmt.Errorf("--exclude: %w", err)
		}
	}
	return func(top, p string, isDir bool) (bool, bool) {
		if root == "" {
			if skip, tree := r.b.bctx.excluded(p, isDir); skip {
				return skip, tree
			}
		}
		if pm == nil {
			return false, false
		}
		rel, err := filepath.Rel(top, p)
		if err != nil {
			return false, false
		}
		return Excluded(pm, filepath.ToSlash(rel), isDir)
	}, nil
}

// sourceDigest is the cache-key digest of what srcs read from --from:
// file contents for the context and named directories, the image ID
// and paths for stages and images (their content is immutable).
func (r *stageRun) sourceDigest(ctx context.Context, from string, srcs []string) (string, error) {
	if from == "" {
		for _, s := range srcs {
			if container.IsURL(s) || isGitURL(s) {
				continue
			}
			if err := checkSource(s); err != nil {
				return "", err
			}
		}
		return r.b.bctx.digest("", localOnly(srcs))
	}
	img, dir, err := r.fromImage(ctx, from)
	if err != nil {
		return "", err
	}
	if dir != "" {
		return r.b.bctx.digest(dir, srcs)
	}
	sum := sha256.Sum256([]byte(img.ID + "\x00" + strings.Join(srcs, "\x00")))
	return hex.EncodeToString(sum[:]), nil
}

func localOnly(srcs []string) []string {
	var out []string
	for _, s := range srcs {
		if !container.IsURL(s) && !isGitURL(s) {
			out = append(out, s)
		}
	}
	return out
}

// stageExtraSources writes heredoc sources and downloads ADD's URLs into
// a temporary directory and removes them from sp's sources.
func (r *stageRun) stageExtraSources(ctx context.Context, sp *copySpec) (string, error) {
	var urls, repos, local []string
	for _, s := range sp.sd.SourcePaths {
		switch {
		case sp.add && isGitURL(s):
			repos = append(repos, s)
		case sp.add && container.IsURL(s):
			urls = append(urls, s)
		default:
			local = append(local, s)
		}
	}
	if len(urls) == 0 && len(repos) == 0 && len(sp.sd.SourceContents) == 0 {
		return "", nil
	}
	sp.sd.SourcePaths = local
	dir, err := os.MkdirTemp(r.b.st.RunRoot(), "copy-")
	if err != nil {
		return "", err
	}
	for _, sc := range sp.sd.SourceContents {
		if err := os.WriteFile(filepath.Join(dir, path.Base(sc.Path)), []byte(sc.Data), 0o644); err != nil {
			os.RemoveAll(dir)
			return "", err
		}
	}
	for _, u := range urls {
		if _, err := container.Download(ctx, u, dir, digest.Digest(sp.checksum)); err != nil {
			os.RemoveAll(dir)
			return "", err
		}
	}
	for i, repo := range repos {
		tree := filepath.Join(dir, stagedTrees, strconv.Itoa(i))
		if err := os.MkdirAll(tree, 0o755); err != nil {
			os.RemoveAll(dir)
			return "", err
		}
		if err := r.stageGit(ctx, repo, tree, sp.keepGitDir); err != nil {
			os.RemoveAll(dir)
			return "", err
		}
	}
	return dir, nil
}

// isGitURL reports whether an ADD source names a git repository.
func isGitURL(s string) bool {
	if strings.HasPrefix(s, "git@") || strings.HasPrefix(s, "git://") {
		return true
	}
	base, _, _ := strings.Cut(s, "#")
	return (strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "ssh://")) && strings.HasSuffix(base, ".git")
}

// stageGit clones repo ("URL#ref[:subdir]") and moves its files into dir;
// .git stays out unless keepGitDir.
func (r *stageRun) stageGit(ctx context.Context, repo, dir string, keepGitDir bool) error {
	src, err := gitSource(ctx, repo, r.b.st.RunRoot())
	if err != nil {
		return err
	}
	defer src.Close()
	ents, err := os.ReadDir(src.Dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Name() == ".git" && !keepGitDir {
			continue
		}
		if err := os.Rename(filepath.Join(src.Dir, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// stagedTrees holds, in a staging directory, the trees whose contents
// are copied (git checkouts), one per source.
const stagedTrees = ".kiln-trees"

// stagedNames lists the staged files copied one by one (heredocs and
// downloads).
func stagedNames(dir string) []string {
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		if e.Name() != stagedTrees {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}
