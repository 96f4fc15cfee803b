package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/dockerfile"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/images"
	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
)

type copyOptions struct {
	Chown, Chmod, From string
	Quiet              bool
	ContextDir         string
	IgnoreFile         string
	registryFlags
	retryFlags
}

func init() {
	register(func() *cobra.Command { return newCopyCommand("copy", false) })
	register(func() *cobra.Command { return newCopyCommand("add", true) })
}

func newCopyCommand(verb string, add bool) *cobra.Command {
	var o copyOptions
	short := "Copy files into a working container"
	if add {
		short = "Add files, URLs and the contents of archives into a working container"
	}
	cmd := &cobra.Command{
		Use:   verb + " [options] CONTAINER SOURCE [SOURCE...] [DEST]",
		Short: short,
		Args:  minArgs(2, "a container and at least one source"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCopy(cmd.Context(), o, add, args)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Chown, "chown", "", "set ownership of the copied files to USER[:GROUP]")
	f.StringVar(&o.Chmod, "chmod", "", "set permissions of the copied files (octal)")
	f.StringVar(&o.From, "from", "", "copy from this container or image instead of the host")
	f.StringVar(&o.ContextDir, "contextdir", "", "directory relative sources are read from")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "do not print the digest of the copied content")
	f.StringVar(&o.IgnoreFile, "ignorefile", "", "ignore file (.dockerignore syntax) for --contextdir, instead of its .containerignore or .dockerignore")
	o.registryFlags.add(f)
	o.retryFlags.add(f)
	addUnsupportedFlags(f, "checksum", "certs-dir")
	return optionsFirst(cmd)
}

func runCopy(ctx context.Context, o copyOptions, add bool, args []string) error {
	if o.IgnoreFile != "" && o.ContextDir == "" {
		return usageErrorf("--ignorefile option requires that you specify a context dir using --contextdir")
	}
	if err := o.registryFlags.check(); err != nil {
		return err
	}
	st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	c, err := container.Open(ctx, st, args[0])
	if err != nil {
		return err
	}
	// No destination: into the working directory, made when missing.
	srcs, dest := args[1:], "./"
	if len(srcs) > 1 {
		srcs, dest = args[1:len(args)-1], args[len(args)-1]
	}
	// As Buildah's: copy fetches URLs too; with --contextdir, sources
	// are inside it ("/" is the context directory itself).
	co := container.CopyOptions{Sources: srcs, Dest: dest, Chown: o.Chown, Chmod: o.Chmod, Add: add, FetchURLs: true, ContextDir: o.ContextDir}
	if co.ContextDir == "" {
		co.ContextDir, _ = os.Getwd()
	} else {
		if co.ContextDir, err = filepath.Abs(co.ContextDir); err != nil {
			return err
		}
		co.Confine = true
		if co.Exclude, err = ignoreRules(o.IgnoreFile, co.ContextDir); err != nil {
			return err
		}
	}
	if o.From != "" {
		root, release, err := mountSource(ctx, st, o.From, o.pullOptions())
		if err != nil {
			return err
		}
		defer release()
		co.FromRoot = root
	}
	if err := c.Copy(ctx, co); err != nil {
		return fmt.Errorf("copying into %s: %w", c.Name(), err)
	}
	return nil
}

// pullOptions are how copy --from pulls an image it does not have.
func (o copyOptions) pullOptions() images.PullOptions {
	return newPullOptions(o.registryFlags, o.retryFlags, transport.Platform{})
}

// ignoreRules reads the ignore file of copy --contextdir (--ignorefile,
// else the directory's .containerignore or .dockerignore) into the
// copier's Exclude; nil when there is none.
func ignoreRules(explicit, dir string) (func(top, hostPath string, isDir bool) (bool, bool), error) {
	pats, err := dockerfile.ReadIgnore(explicit, "", dir)
	if err != nil || len(pats) == 0 {
		return nil, err
	}
	pm, err := patternmatcher.New(pats)
	if err != nil {
		return nil, fmt.Errorf("ignore file: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	return func(_, hostPath string, isDir bool) (bool, bool) {
		if h, err := filepath.Abs(hostPath); err == nil {
			hostPath = h
		}
		rel, err := filepath.Rel(abs, hostPath)
		if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
			return false, false
		}
		return dockerfile.Excluded(pm, filepath.ToSlash(rel), isDir)
	}, nil
}

// mountSource mounts a container, or a temporary container of an image
// (pulled first when it is not stored, as Buildah's copy --from does),
// as the source of --from; release undoes it.
func mountSource(ctx context.Context, st *store.Store, ref string, po images.PullOptions) (string, func(), error) {
	if src, err := container.Open(ctx, st, ref); err == nil {
		p, err := src.Mount(ctx)
		if err != nil {
			return "", nil, err
		}
		return p, func() { _ = src.Unmount(ctx, false) }, nil
	}
	img, err := images.Ensure(ctx, st, ref, images.EnsureOptions{Policy: images.PullMissing, Pull: po, Logger: logger})
	if err != nil {
		if errors.Is(err, image.ErrBadReference) {
			return "", nil, fmt.Errorf("--from %q is neither a container nor an image: %w", ref, err)
		}
		return "", nil, fmt.Errorf("--from %q: %w", ref, err)
	}
	tmp, err := container.New(ctx, st, container.NewOptions{Image: img.ID, Name: fmt.Sprintf("kiln-copy-from-%d", os.Getpid())})
	if err != nil {
		return "", nil, fmt.Errorf("--from %q: %w", ref, err)
	}
	p, err := tmp.Mount(ctx)
	if err != nil {
		_ = tmp.Remove(ctx)
		return "", nil, err
	}
	return p, func() { _ = tmp.Remove(context.WithoutCancel(ctx)) }, nil
}
