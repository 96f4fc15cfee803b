package main

import (
	"context"
	"fmt"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/images"
	"github.com/kiln-build/kiln/internal/store"
)

// manifestAddOptions are `manifest add`'s flags; `manifest create`
// uses All and the registry flags for the images it starts with.
type manifestAddOptions struct {
	All                          bool
	OS, Arch, Variant, OSVersion string
	Features, OSFeatures         []string
	Annotations                  []string
	registryFlags
}

func init() { registerManifest(newManifestAddCommand) }

func newManifestAddCommand() *cobra.Command {
	var o manifestAddOptions
	cmd := &cobra.Command{
		Use:   "add [options] LIST IMAGE",
		Short: "Add an image (local, or TRANSPORT:REF) to a manifest list",
		Args:  exactArgs(2, "a manifest list and an image"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			descs, err := addToManifestList(ctx, st, args[0], args[1], o)
			if err != nil {
				return err
			}
			ml, err := st.ManifestList(ctx, args[0])
			if err != nil {
				return err
			}
			// Buildah's "LIST-ID: DIGEST", one line per image added.
			for _, d := range descs {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", images.ListID(ml), d.Digest)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.All, "all", false, "when IMAGE is a manifest list, add every image it lists")
	f.StringVar(&o.OS, "os", "", "OS of the image (and the one picked from a list)")
	f.StringVar(&o.Arch, "arch", "", "architecture of the image (and the one picked from a list)")
	f.StringVar(&o.Variant, "variant", "", "architecture variant of the image")
	f.StringVar(&o.OSVersion, "os-version", "", "OS version of the image")
	f.StringSliceVar(&o.Features, "features", nil, "features of the image (refused: OCI indexes have no such field)")
	f.StringSliceVar(&o.OSFeatures, "os-features", nil, "OS features of the image")
	f.StringArrayVar(&o.Annotations, "annotation", nil, "set an annotation KEY=VALUE on the entry")
	o.registryFlags.add(f)
	return cmd
}

// addToManifestList adds the image (or, with All, the images of the list)
// named by ref to the stored list, and returns the entries written.
func addToManifestList(ctx context.Context, st *store.Store, list, ref string, o manifestAddOptions) ([]ocispec.Descriptor, error) {
	if len(o.Features) > 0 {
		return nil, usageErrorf("--features: OCI indexes have no features field")
	}
	annotations, err := parseAnnotations(o.Annotations)
	if err != nil {
		return nil, err
	}
	descs, err := images.AddToList(ctx, st, list, ref, images.AddOptions{
		All:         o.All,
		Platform:    ocispec.Platform{OS: o.OS, Architecture: o.Arch, Variant: o.Variant, OSVersion: o.OSVersion, OSFeatures: o.OSFeatures},
		Annotations: annotations,
		System:      o.systemContext(),
	})
	return descs, listNotFound(list, err)
}

func parseAnnotations(kvs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageErrorf("bad --annotation %q: want KEY=VALUE", kv)
		}
		out[k] = v
	}
	return out, nil
}
