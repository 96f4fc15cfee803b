package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/dockerfile"
	"github.com/kiln-build/kiln/internal/images"
	"github.com/kiln-build/kiln/internal/store"
)

// readDockerfile fills bo.Dockerfile from -f (several are joined, "-"
// is stdin), stdin's Dockerfile, or the context's Containerfile or
// Dockerfile, and returns the file's path ("" for stdin).
func readDockerfile(cmd *cobra.Command, o buildOptions, src *dockerfile.Source, bo *dockerfile.Options) (string, error) {
	if len(o.Files) == 0 {
		if src.Dockerfile != nil {
			bo.Dockerfile, bo.DockerfileName = src.Dockerfile, "Dockerfile"
			return "", nil
		}
		for _, name := range []string{"Containerfile", "Dockerfile"} {
			p := filepath.Join(src.Dir, name)
			if b, err := os.ReadFile(p); err == nil {
				bo.Dockerfile, bo.DockerfileName = b, name
				return p, nil
			}
		}
		return "", usageErrorf("no Containerfile or Dockerfile in the context directory %s: give one with -f", src.Dir)
	}
	var first string
	for _, f := range o.Files {
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
			b, err = os.ReadFile(p)
		}
		if err != nil {
			return "", usageErrorf("reading Dockerfile %s: %v", f, err)
		}
		if bo.DockerfileName == "" {
			bo.DockerfileName, first = filepath.Base(f), p
		}
		bo.Dockerfile = append(append(bo.Dockerfile, b...), '\n')
	}
	return first, nil
}

// writeOutput exports the image's root filesystem: type=local,dest=DIR
// or type=tar,dest=FILE ("-" is stdout).
func writeOutput(cmd *cobra.Command, st *store.Store, imageID, spec string) error {
	ctx := cmd.Context()
	kv, err := keyValues(strings.Split(spec, ","), "--output")
	if err != nil {
		return err
	}
	typ, dest := kv["type"], kv["dest"]
	if typ == "" && dest == "" && !strings.Contains(spec, "=") {
		typ, dest = "local", spec
	}
	if dest == "" || (typ != "local" && typ != "tar") {
		return usageErrorf("--output %q: want type=local,dest=DIR or type=tar,dest=FILE", spec)
	}
	if typ == "local" {
		return images.ExportDir(ctx, st, imageID, dest)
	}
	if dest == "-" {
		return images.ExportTar(ctx, st, imageID, cmd.OutOrStdout())
	}
	f, err := os.Create(dest)
	if err != nil {
		return err
	}
	err = images.ExportTar(ctx, st, imageID, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
