package main

import (
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/images"
)

func init() { registerManifest(newManifestAnnotateCommand) }

func newManifestAnnotateCommand() *cobra.Command {
	var o manifestAddOptions
	cmd := &cobra.Command{
		Use:   "annotate [options] LIST DIGEST",
		Short: "Set the platform fields and annotations of an image's entry in a manifest list",
		Args:  exactArgs(2, "a manifest list and the digest of one of its images"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			d, err := digest.Parse(args[1])
			if err != nil {
				return usageErrorf("bad digest %q: %v", args[1], err)
			}
			annotations, err := parseAnnotations(o.Annotations)
			if err != nil {
				return err
			}
			if len(o.Features) > 0 {
				return usageErrorf("--features: OCI indexes have no features field")
			}
			st, err := openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			err = images.Annotate(ctx, st, args[0], d, images.AddOptions{
				Platform:    ocispec.Platform{OS: o.OS, Architecture: o.Arch, Variant: o.Variant, OSVersion: o.OSVersion, OSFeatures: o.OSFeatures},
				Annotations: annotations,
			})
			if err != nil {
				return listNotFound(args[0], err)
			}
			ml, err := st.ManifestList(ctx, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", images.ListID(ml), d)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.OS, "os", "", "OS of the image")
	f.StringVar(&o.Arch, "arch", "", "architecture of the image")
	f.StringVar(&o.Variant, "variant", "", "architecture variant of the image")
	f.StringVar(&o.OSVersion, "os-version", "", "OS version of the image")
	f.StringSliceVar(&o.Features, "features", nil, "features of the image (refused: OCI indexes have no such field)")
	f.StringSliceVar(&o.OSFeatures, "os-features", nil, "OS features of the image")
	f.StringArrayVar(&o.Annotations, "annotation", nil, "set an annotation KEY=VALUE on the entry")
	return cmd
}
