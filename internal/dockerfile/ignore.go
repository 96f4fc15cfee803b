package dockerfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/moby/patternmatcher/ignorefile"
)

// ReadIgnore reads --ignorefile, else <Dockerfile>.dockerignore next to
// the Dockerfile, else .containerignore or .dockerignore in the context.
func ReadIgnore(explicit, dfPath, dir string) ([]string, error) {
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
			return nil, fmt.Errorf("ignore file %s: %w", p, err)
		}
		defer f.Close()
		pats, err := ignorefile.ReadAll(f)
		if err != nil {
			return nil, fmt.Errorf("reading ignore file %s: %w", p, err)
		}
		return pats, nil
	}
	return nil, nil
}
