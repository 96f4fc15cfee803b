package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/transport"
	"github.com/kiln-build/kiln/internal/transport/registry"
)

type imageInspectOptions struct {
	Raw, Config, NoTags bool
	Attestations        bool
	Format              string
	OS, Arch, Variant   string
	registryFlags
	retryFlags
}

func init() { registerImage(newImageInspectCommand) }

func newImageInspectCommand() *cobra.Command {
	var o imageInspectOptions
	cmd := &cobra.Command{
		Use:   "inspect [options] TRANSPORT:REF",
		Short: "Print what an image in any transport is, without pulling it (like skopeo inspect)",
		Args:  exactArgs(1, "an image reference such as docker://HOST/REPO:TAG or oci:DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImageInspect(cmd, o, args[0])
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.Raw, "raw", false, "print the manifest (or with --config the config) exactly as stored")
	f.BoolVar(&o.Config, "config", false, "print the image's config")
	f.BoolVarP(&o.NoTags, "no-tags", "n", false, "do not list the repository's tags")
	f.StringVarP(&o.Format, "format", "f", "", "format the output with a Go template")
	f.StringVar(&o.OS, "override-os", "", "pick the image for this OS from a manifest list")
	f.StringVar(&o.Arch, "override-arch", "", "pick the image for this architecture from a manifest list")
	f.StringVar(&o.Variant, "override-variant", "", "pick the image for this variant from a manifest list")
	o.registryFlags.add(f)
	f.BoolVar(&o.Attestations, "attestations", false, "print the attestations (provenance, SBOM) attached to the image: a stored one, or one in a registry")
	f.IntVar(&o.Retry, "retry-times", 3, "number of times to retry a failed request")
	f.DurationVar(&o.RetryDelay, "retry-delay", 0, "delay before the first retry (default 1s, doubled each time)")
	return cmd
}

func runImageInspect(cmd *cobra.Command, o imageInspectOptions, arg string) error {
	ctx := cmd.Context()
	if o.Attestations {
		return printAttestations(cmd, arg, o.systemContext())
	}
	r, err := transport.ParseReference(arg)
	if err != nil {
		return err
	}
	sys := o.systemContext()
	o.retryFlags.apply(sys, &transport.CopyOptions{})
	src, err := r.NewSource(ctx, sys)
	if err != nil {
		return fmt.Errorf("inspecting %s: %w", arg, err)
	}
	defer src.Close()
	p := transport.Platform{OS: o.OS, Architecture: o.Arch, Variant: o.Variant}
	out := cmd.OutOrStdout()
	switch {
	case o.Raw && !o.Config:
		raw, _, err := src.Manifest(ctx, nil)
		if err != nil {
			return fmt.Errorf("inspecting %s: %w", arg, err)
		}
		_, err = out.Write(raw)
		return err
	case o.Config:
		img, err := transport.ReadImage(ctx, src, p)
		if err != nil {
			return fmt.Errorf("inspecting %s: %w", arg, err)
		}
		if o.Raw {
			_, err = out.Write(img.RawConfig)
			return err
		}
		return printJSON(out, img.Config)
	}
	info, err := transport.Inspect(ctx, src, transport.InspectOptions{Name: repoName(r, src), Platform: p})
	if err != nil {
		return err
	}
	if r.Transport() == transport.TransportDocker && !o.NoTags {
		info.RepoTags = repoTags(ctx, r, sys)
	}
	if o.Format != "" {
		return render(out, o.Format, []any{info}, true)
	}
	return printJSON(out, info)
}

// repoName is skopeo's Name: the repository the image comes from, with
// no tag or digest; "" when the transport has no such name.
func repoName(r transport.Ref, src transport.Source) string {
	n := transport.ImageName(r, src)
	if n == "" {
		return ""
	}
	pr, err := image.ParseReference(n)
	if err != nil {
		return n
	}
	pr = pr.Normalized()
	return pr.Domain + "/" + pr.Path
}

// repoTags lists the repository's tags; a registry that refuses to list
// them gives an empty list, as skopeo does.
func repoTags(ctx context.Context, r transport.Ref, sys *transport.SystemContext) []string {
	tags, err := transport.Tags(ctx, r, sys)
	if err != nil {
		var se *registry.StatusError
		if !errors.As(err, &se) {
			logger.Warn("listing tags", "image", r.String(), "error", err)
		}
		return []string{}
	}
	if tags == nil {
		tags = []string{}
	}
	return tags
}
