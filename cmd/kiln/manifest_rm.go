package main

import (
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/images"
	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
)

func init() {
	registerManifest(newManifestRmCommand)
	registerManifest(newManifestRemoveCommand)
}

func newManifestRmCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "rm LIST [LIST...]",
		Short: "Remove manifest lists from local storage (the images they list stay)",
		Args:  minArgs(1, "at least one manifest list"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			var errs []error
			for _, name := range args {
				ml, err := st.ManifestList(ctx, name)
				if err == nil {
					err = st.DeleteManifestList(ctx, ml.Name)
				}
				if err != nil {
					errs = append(errs, listNotFound(name, err))
					continue
				}
				// Buildah's words: the name goes, and the list's ID when no
				// other name (a tag of it) has the same list.
				fmt.Fprintf(cmd.OutOrStdout(), "untagged: %s\n", ml.Name)
				if tagged, err := images.ListTagged(ctx, st, ml); err != nil {
					errs = append(errs, err)
				} else if !tagged {
					fmt.Fprintln(cmd.OutOrStdout(), images.ListID(ml))
				}
			}
			return errors.Join(errs...)
		},
	}
}

func newManifestRemoveCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "remove LIST DIGEST",
		Short: "Remove the image with DIGEST from a manifest list",
		Args:  exactArgs(2, "a manifest list and the digest of one of its images"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			d, err := digest.Parse(args[1])
			if err != nil {
				return usageErrorf("bad digest %q: %v", args[1], err)
			}
			st, err := openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			err = st.UpdateManifestList(ctx, args[0], func(ml *store.ManifestList) error {
				raw, err := transport.EditIndex(ml.Index, func(in []ocispec.Descriptor) ([]ocispec.Descriptor, error) {
					return transport.RemoveInstance(in, d)
				})
				ml.Index = raw
				delete(ml.Instances, d)
				return err
			})
			if err != nil {
				return listNotFound(args[0], err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), d)
			return nil
		},
	}
}
