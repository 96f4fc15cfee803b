package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
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
			for _, d := range descs {
				fmt.Fprintln(cmd.OutOrStdout(), d.Digest)
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
	f.StringSliceVar(&o.Features, "features", nil, "features of the image (accepted; OCI indexes have no such field)")
	f.StringSliceVar(&o.OSFeatures, "os-features", nil, "OS features of the image")
	f.StringArrayVar(&o.Annotations, "annotation", nil, "set an annotation KEY=VALUE on the entry")
	o.registryFlags.add(f)
	return cmd
}

// addToManifestList adds the image (or, with All, the images of the list)
// named by ref to the stored list, and returns the entries written.
func addToManifestList(ctx context.Context, st *store.Store, list, ref string, o manifestAddOptions) ([]ocispec.Descriptor, error) {
	annotations, err := parseAnnotations(o.Annotations)
	if err != nil {
		return nil, err
	}
	if _, err := st.ManifestList(ctx, list); err != nil {
		return nil, listNotFound(list, err)
	}
	descs, where, err := listEntries(ctx, st, ref, o)
	if err != nil {
		return nil, err
	}
	for i := range descs {
		descs[i] = o.override(descs[i], annotations)
	}
	err = st.UpdateManifestList(ctx, list, func(ml *store.ManifestList) error {
		raw, err := transport.EditIndex(ml.Index, func(in []ocispec.Descriptor) ([]ocispec.Descriptor, error) {
			return transport.AddInstances(in, descs...), nil
		})
		if err != nil {
			return err
		}
		ml.Index = raw
		for _, d := range descs {
			ml.Instances[d.Digest] = where(d.Digest)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("adding %s to manifest list %s: %w", ref, list, err)
	}
	return descs, nil
}

// listEntries reads the entries for ref and says where each will be
// read from on push: a local image by ID, a registry image by digest,
// anything else by the reference given.
func listEntries(ctx context.Context, st *store.Store, ref string, o manifestAddOptions) ([]ocispec.Descriptor, func(digest.Digest) string, error) {
	p := transport.Platform{OS: o.OS, Architecture: o.Arch, Variant: o.Variant}
	if !isTransportRef(ref) && !strings.HasPrefix(ref, "docker://") {
		if img, err := st.LookupImage(ctx, ref); err == nil {
			descs, err := transport.ListInstances(ctx, st.NewImageSource(ctx, img), p, false)
			return descs, func(digest.Digest) string { return img.ID }, err
		}
	}
	r, err := transport.ParseReference(ref)
	if err != nil {
		return nil, nil, err
	}
	sys := o.systemContext()
	src, err := r.NewSource(ctx, sys)
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", ref, err)
	}
	defer src.Close()
	descs, err := transport.ListInstances(ctx, src, p, o.All)
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", ref, err)
	}
	where := func(digest.Digest) string { return r.String() }
	if r.Transport() == transport.TransportDocker {
		repo, err := transport.RepositoryName(r, sys)
		if err != nil {
			return nil, nil, err
		}
		where = func(d digest.Digest) string { return "docker://" + repo + "@" + d.String() }
	}
	return descs, where, nil
}

// override applies the platform flags and annotations to an entry.
func (o manifestAddOptions) override(d ocispec.Descriptor, annotations map[string]string) ocispec.Descriptor {
	p := ocispec.Platform{}
	if d.Platform != nil {
		p = *d.Platform
	}
	for _, f := range []struct {
		to   *string
		from string
	}{{&p.OS, o.OS}, {&p.Architecture, o.Arch}, {&p.Variant, o.Variant}, {&p.OSVersion, o.OSVersion}} {
		if f.from != "" {
			*f.to = f.from
		}
	}
	if len(o.OSFeatures) > 0 {
		p.OSFeatures = o.OSFeatures
	}
	d.Platform = &p
	if len(annotations) > 0 {
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		for k, v := range annotations {
			d.Annotations[k] = v
		}
	}
	return d
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
