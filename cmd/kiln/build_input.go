package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/dockerfile"
	"github.com/kiln-build/kiln/internal/images"
	"github.com/kiln-build/kiln/internal/store"
)

// readDockerfile fills bo.Dockerfile from -f (several are joined, "-"
// is stdin; a relative path not found in the working directory is
// looked for in the context), stdin's Dockerfile, the Dockerfile the
// context argument named, or the context's Containerfile or Dockerfile;
// a name ending in ".in" goes through the C preprocessor first. It
// returns the file's path ("" for stdin).
func readDockerfile(cmd *cobra.Command, o buildOptions, src *dockerfile.Source, bo *dockerfile.Options, log *slog.Logger) (string, error) {
	files := o.Files
	if len(files) == 0 {
		if src.Dockerfile != nil {
			bo.Dockerfile, bo.DockerfileName = src.Dockerfile, "Dockerfile"
			return "", nil
		}
		p, err := dockerfile.Discover(src)
		if err != nil {
			return "", err
		}
		files = []string{p}
	}
	var first string
	for _, f := range files {
		var b []byte
		var err error
		p := f
		if f == "-" {
			b, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 16<<20))
			p = ""
		} else {
			if _, statErr := os.Stat(p); errors.Is(statErr, os.ErrNotExist) && !filepath.IsAbs(p) {
				p = filepath.Join(src.Dir, f)
			}
			var fi os.FileInfo
			if fi, err = os.Stat(p); err == nil && fi.IsDir() {
				return "", usageErrorf("containerfile: %q cannot be path to a directory", f)
			}
			if err == nil {
				b, err = os.ReadFile(p)
			}
		}
		if err != nil {
			return "", usageErrorf("reading Dockerfile %s: %v", f, err)
		}
		if len(b) == 0 {
			return "", usageErrorf("no contents in %q", p)
		}
		if strings.HasSuffix(f, ".in") {
			dir := src.Dir
			if p != "" {
				dir = filepath.Dir(p)
			}
			cppFlags, err := cppFlags(o)
			if err != nil {
				return "", err
			}
			if b, err = dockerfile.Preprocess(cmd.Context(), f, b, dir, cppFlags, log); err != nil {
				return "", err
			}
		}
		if len(files) > 1 {
			if err := dockerfile.CheckFile(f, b); err != nil {
				return "", err
			}
		}
		if bo.DockerfileName == "" {
			bo.DockerfileName, first = filepath.Base(f), p
		}
		bo.Dockerfile = append(append(bo.Dockerfile, b...), '\n')
	}
	return first, nil
}

// cppFlags are BUILDAH_CPPFLAGS's words, then --cpp-flag's.
func cppFlags(o buildOptions) ([]string, error) {
	var out []string
	if v, ok := os.LookupEnv("BUILDAH_CPPFLAGS"); ok {
		words, err := dockerfile.SplitWords(v)
		if err != nil {
			return nil, usageErrorf("parsing BUILDAH_CPPFLAGS %q: %v", v, err)
		}
		out = append(out, words...)
	}
	return append(out, o.CPPFlags...), nil
}

// writeOutput exports the image's root filesystem as out says: a
// directory, a tar file, or a tar on stdout.
func writeOutput(ctx context.Context, st *store.Store, imageID string, out outputSpec, stdout io.Writer) error {
	if !out.tar {
		return images.ExportDir(ctx, st, imageID, out.dest)
	}
	if out.dest == "-" {
		return images.ExportTar(ctx, st, imageID, stdout)
	}
	f, err := os.Create(out.dest)
	if err != nil {
		return err
	}
	err = images.ExportTar(ctx, st, imageID, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing --output %s: %w", out.dest, err)
	}
	return nil
}
