package main

import (
	"context"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
)

type manifestPushOptions struct {
	All, Quiet, Rm, RemoveSignatures bool
	Format, DigestFile               string
	CompressionFormat                string
	CompressionLevel                 int
	registryFlags
	retryFlags
}

func init() { registerManifest(newManifestPushCommand) }

func newManifestPushCommand() *cobra.Command {
	var o manifestPushOptions
	cmd := &cobra.Command{
		Use:   "push [options] LIST [DESTINATION]",
		Short: "Push a manifest list, and with --all the images it lists, to a transport",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dest := args[0]
			if len(args) == 2 {
				dest = args[1]
			}
			ref, err := transport.ParseReference(dest)
			if err != nil {
				return err
			}
			copts, err := pushCopyOptions(pushOptions{Format: o.Format, CompressionFormat: o.CompressionFormat, CompressionLevel: o.CompressionLevel, RemoveSignatures: o.RemoveSignatures})
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			st, err := openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			return pushManifestList(cmd, st, args[0], ref, o, copts)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.All, "all", true, "push the images the list names too, not only the list")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "do not print progress")
	f.BoolVar(&o.Rm, "rm", false, "remove the manifest list from local storage once pushed")
	f.BoolVar(&o.RemoveSignatures, "remove-signatures", false, "do not copy signatures")
	f.StringVarP(&o.Format, "format", "f", "", "manifest type: oci or v2s2 (default: keep)")
	f.StringVar(&o.DigestFile, "digestfile", "", "write the digest of the pushed list to this file")
	f.StringVar(&o.CompressionFormat, "compression-format", "", "compression for uncompressed layers: gzip (default) or zstd")
	f.IntVar(&o.CompressionLevel, "compression-level", 0, "compression level")
	o.registryFlags.add(f)
	o.retryFlags.add(f)
	addIgnoredFlags(f, "sign-by", "force-compression", "add-compression")
	return cmd
}

// pushManifestList writes the stored list name to ref: with All, a copy
// of every instance from where it was recorded, then the list; without,
// the list alone (its instances must be there already).
func pushManifestList(cmd *cobra.Command, st *store.Store, name string, ref transport.Ref, o manifestPushOptions, copts transport.CopyOptions) error {
	ctx := cmd.Context()
	ml, err := st.ManifestList(ctx, name)
	if err != nil {
		return listNotFound(name, err)
	}
	if ml, err = refreshLocalInstances(ctx, st, ml); err != nil {
		return err
	}
	sys := o.systemContext()
	o.retryFlags.apply(sys, &copts)
	src := transport.NewListSource(ml.Index, ml.MediaType, listInstanceSource(ctx, st, ml, sys))
	defer src.Close()
	var d digest.Digest
	if o.All {
		copts.All = true
		d, err = copyWithProgress(cmd, ref, sys, src, copts, o.Quiet)
	} else {
		d, err = putIndexOnly(cmd, ref, sys, ml)
	}
	if err != nil {
		return fmt.Errorf("pushing manifest list %s to %s: %w", ml.Name, ref, err)
	}
	if err := writeDigestFile(o.DigestFile, d.String()); err != nil {
		return err
	}
	if o.Rm {
		return st.DeleteManifestList(ctx, ml.Name)
	}
	return nil
}

func putIndexOnly(cmd *cobra.Command, ref transport.Ref, sys *transport.SystemContext, ml store.ManifestList) (digest.Digest, error) {
	ctx := cmd.Context()
	dst, err := ref.NewDestination(ctx, sys)
	if err != nil {
		return "", fmt.Errorf("opening %s: %w", ref, err)
	}
	defer dst.Close()
	if err := dst.PutManifest(ctx, ml.Index, ml.MediaType, nil); err != nil {
		return "", err
	}
	if err := dst.Commit(ctx); err != nil {
		return "", err
	}
	return digest.FromBytes(ml.Index), nil
}

// refreshLocalInstances points the entries of local images at the
// manifests those images have now: an image keeps its ID (its config)
// when it is pulled again, but may then have another manifest (layers
// compressed by a registry round trip). Platform and annotations stay.
func refreshLocalInstances(ctx context.Context, st *store.Store, ml store.ManifestList) (store.ManifestList, error) {
	moved := map[digest.Digest]ocispec.Descriptor{}
	for d, where := range ml.Instances {
		if !isFullImageID(where) {
			continue
		}
		img, err := st.Image(ctx, where)
		if err != nil {
			return ml, fmt.Errorf("instance %s of %s: %w", d, ml.Name, err)
		}
		if img.ManifestDigest == d {
			continue
		}
		raw, err := st.ImageManifest(img)
		if err != nil {
			return ml, err
		}
		moved[d] = ocispec.Descriptor{MediaType: img.ManifestType, Digest: img.ManifestDigest, Size: int64(len(raw))}
	}
	if len(moved) == 0 {
		return ml, nil
	}
	raw, err := transport.EditIndex(ml.Index, func(in []ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		for i, m := range in {
			if n, ok := moved[m.Digest]; ok {
				in[i].MediaType, in[i].Digest, in[i].Size = n.MediaType, n.Digest, n.Size
			}
		}
		return in, nil
	})
	if err != nil {
		return ml, err
	}
	ml.Index = raw
	for old, n := range moved {
		ml.Instances[n.Digest] = ml.Instances[old]
		delete(ml.Instances, old)
	}
	return ml, nil
}
