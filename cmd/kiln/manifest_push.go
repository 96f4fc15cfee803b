package main

import (
	"fmt"

	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
)

type manifestPushOptions struct {
	All, Quiet, Rm, RemoveSignatures bool
	Format, DigestFile               string
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
			copts := transport.CopyOptions{RemoveSignatures: o.RemoveSignatures, Logger: logger}
			if copts.Format, err = transport.ParseFormat(o.Format); err != nil {
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
	o.registryFlags.add(f)
	o.retryFlags.add(f)
	addIgnoredFlags(f, "sign-by", "compression-format", "compression-level", "force-compression", "add-compression")
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
