package dockerfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/kiln-build/kiln/internal/container"
)

// ReadIgnore reads --ignorefile, else <Dockerfile>.dockerignore next to
// the Dockerfile, else .containerignore or .dockerignore in the context.
func ReadIgnore(explicit, dfPath, dir string) ([]string, error) {
	_, pats, err := FindIgnore(explicit, dfPath, dir)
	return pats, err
}

// FindIgnore is ReadIgnore that also returns the file's path ("" when
// there is none).
func FindIgnore(explicit, dfPath, dir string) (string, []string, error) {
	cands := []string{explicit}
	if explicit == "" {
		cands = []string{filepath.Join(dir, ".containerignore"), filepath.Join(dir, ".dockerignore")}
		if dfPath != "" {
			cands = append([]string{dfPath + ".dockerignore", dfPath + ".containerignore"}, cands...)
		}
	}
	for _, p := range cands {
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) && explicit == "" {
			continue
		}
		if err != nil {
			return "", nil, fmt.Errorf("ignore file %s: %w", p, err)
		}
		defer f.Close()
		pats, err := ignorefile.ReadAll(f)
		if err != nil {
			return "", nil, fmt.Errorf("reading ignore file %s: %w", p, err)
		}
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		return p, pats, nil
	}
	return "", nil, nil
}

// Excluded says whether ignore patterns pm exclude path rel (relative to
// the context, slash-separated) and, for an excluded directory, whether
// nothing below it can be let in again, so that a walk skips the tree.
// A "!" pattern lets files below an excluded directory in only when the
// pattern names that directory literally ("!dir/keep", not "!*/keep"):
// the rule of Docker's classic builder, BuildKit's file walker and
// Buildah alike.
func Excluded(pm *patternmatcher.PatternMatcher, rel string, isDir bool) (skip, skipTree bool) {
	m, err := pm.MatchesOrParentMatches(rel)
	if err != nil || !m {
		return false, false
	}
	if !isDir {
		return true, false
	}
	dirSlash := rel + "/"
	for _, p := range pm.Patterns() {
		if p.Exclusion() && strings.HasPrefix(p.String()+"/", dirSlash) {
			return true, false
		}
	}
	return true, true
}

// noteIgnored adds to a missing-source error how many of the sources
// exist in the context but are excluded by the ignore file, as Buildah
// says it ("N filtered out using FILE").
func (r *stageRun) noteIgnored(err error, sources []string) error {
	bc := r.b.bctx
	if !errors.Is(err, container.ErrSourceMissing) || bc.pm == nil || bc.dir == "" {
		return err
	}
	n := 0
	for _, s := range sources {
		if strings.Contains(s, "://") {
			continue
		}
		matches, _ := filepath.Glob(filepath.Join(bc.dir, s))
		for _, m := range matches {
			fi, statErr := os.Lstat(m)
			if skip, _ := bc.excluded(m, statErr == nil && fi.IsDir()); skip {
				n++
			}
		}
	}
	if n == 0 {
		return err
	}
	name := r.b.o.IgnoreFile
	if name == "" {
		name = "the ignore file"
	}
	return fmt.Errorf("%w (%d filtered out using %s)", err, n, name)
}
