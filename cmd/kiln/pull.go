package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
)

type pullOptions struct {
	Quiet   bool
	AllTags bool
	registryFlags
	retryFlags
	platformFlags
}

func init() { register(newPullCommand) }

func newPullCommand() *cobra.Command {
	var o pullOptions
	cmd := &cobra.Command{
		Use:   "pull [options] IMAGE",
		Short: "Copy an image from a transport into local storage",
		Args:  exactArgs(1, "an image reference"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPull(cmd, o, args[0])
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "do not print progress")
	f.BoolVarP(&o.AllTags, "all-tags", "a", false, "pull every tag of the repository")
	o.registryFlags.add(f)
	o.retryFlags.add(f)
	o.platformFlags.add(f)
	addIgnoredFlags(f, "decryption-key", "policy", "remove-signatures")
	return cmd
}

func runPull(cmd *cobra.Command, o pullOptions, ref string) error {
	ctx := cmd.Context()
	p, err := o.platformFlags.platform()
	if err != nil {
		return err
	}
	ps := pullSettings{Registry: o.registryFlags, Retry: o.retryFlags, Platform: p, Quiet: o.Quiet, Progress: cmd.ErrOrStderr()}
	refs := []string{ref}
	if o.AllTags {
		if refs, err = allTags(ctx, ref, ps); err != nil {
			return err
		}
	}
	st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, r := range refs {
		img, err := pullImage(ctx, st, r, ps)
		if err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), img.ID)
	}
	return nil
}

// allTags lists "docker://REPO:TAG" for every tag of the repository of
// ref, which must not name a tag or digest itself.
func allTags(ctx context.Context, ref string, ps pullSettings) ([]string, error) {
	r, err := transport.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	if r.Transport() != transport.TransportDocker {
		return nil, usageErrorf("--all-tags needs a registry repository, not %s", r)
	}
	if pr, err := image.ParseReference(strings.TrimPrefix(ref, "docker://")); err == nil && (pr.Tag != "" || pr.Digest != "") {
		return nil, usageErrorf("--all-tags needs a repository without a tag or digest, not %q", ref)
	}
	sys := ps.systemContext()
	repo, err := transport.RepositoryName(r, sys)
	if err != nil {
		return nil, err
	}
	tags, err := transport.Tags(ctx, r, sys)
	if err != nil {
		return nil, fmt.Errorf("listing tags of %s: %w", repo, err)
	}
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		out = append(out, "docker://"+repo+":"+t)
	}
	return out, nil
}

// pullSettings are what pulling needs besides the reference; pull, from
// and build share them. The zero value pulls this machine's platform
// with the default registry settings and retries, silently.
type pullSettings struct {
	Registry registryFlags
	// Retry is --retry/--retry-delay; zero keeps the library defaults.
	Retry    retryFlags
	Platform transport.Platform
	Quiet    bool
	// Progress receives progress lines or bars; nil is silent.
	Progress io.Writer
}

func (ps pullSettings) systemContext() *transport.SystemContext {
	sys := ps.Registry.systemContext()
	var c transport.CopyOptions
	ps.Retry.apply(sys, &c)
	sys.Platform = ps.Platform
	return sys
}

// pullImage copies ref into the store and names it as Buildah would:
// by the full name it has at its origin (registry, docker-daemon:,
// docker-archive:), normalized.
func pullImage(ctx context.Context, st *store.Store, ref string, ps pullSettings) (store.Image, error) {
	r, err := transport.ParseReference(ref)
	if err != nil {
		return store.Image{}, err
	}
	sys := ps.Registry.systemContext()
	copts := transport.CopyOptions{Platform: ps.Platform, Logger: logger, TempDir: sys.TempDir}
	ps.Retry.apply(sys, &copts)
	src, err := r.NewSource(ctx, sys)
	if err != nil {
		return store.Image{}, fmt.Errorf("pulling %s: %w", ref, err)
	}
	defer src.Close()
	var names []string
	if n, err := image.NormalizeName(transport.ImageName(r, src)); err == nil {
		names = append(names, n)
	}
	prog := newCopyProgress(ps.Progress, ps.Quiet || ps.Progress == nil)
	copts.Progress = prog.callback()
	dst := st.NewImageDestination(names)
	defer dst.Close()
	_, err = transport.Copy(ctx, dst, src, copts)
	prog.finish()
	if err != nil {
		return store.Image{}, fmt.Errorf("pulling %s: %w", ref, err)
	}
	prog.printf("Writing manifest to image destination\n")
	return dst.Image(), nil
}
