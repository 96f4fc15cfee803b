package main

import (
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/images"
	"github.com/kiln-build/kiln/internal/transport"
)

type manifestPushOptions struct {
	All, Quiet, Rm bool
	DigestFile     string
	copyFlags
	registryFlags
	retryFlags
	sign signFlags
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
			return runManifestPush(cmd, o, args[0], dest)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.All, "all", true, "push the images the list names too, not only the list")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "do not print progress")
	f.BoolVar(&o.Rm, "rm", false, "remove the manifest list from local storage once pushed")
	o.copyFlags.add(f, "compression for uncompressed layers: gzip (default) or zstd")
	f.StringVar(&o.DigestFile, "digestfile", "", "write the digest of the pushed list to this file")
	o.registryFlags.add(f)
	o.retryFlags.add(f)
	o.sign.add(f)
	addUnsupportedFlags(f, "force-compression!", "add-compression")
	return cmd
}

func runManifestPush(cmd *cobra.Command, o manifestPushOptions, name, dest string) error {
	ctx := cmd.Context()
	ref, err := transport.ParseReference(dest)
	if err != nil {
		return err
	}
	po := images.PushOptions{System: o.systemContext(), List: images.ListPushOptions{Instances: o.All, Remove: o.Rm}}
	if po.Copy, err = o.copyFlags.copyOptions(false, false); err != nil {
		return err
	}
	o.retryFlags.apply(po.System, &po.Copy)
	if po.Sign, err = o.sign.options(); err != nil {
		return err
	}
	st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	prog := newCopyProgress(cmd.ErrOrStderr(), o.Quiet)
	po.Progress = prog.progress()
	d, err := images.PushList(ctx, st, name, ref, po)
	prog.finish()
	if err != nil {
		return listNotFound(name, err)
	}
	return writeDigestFile(o.DigestFile, d.String())
}
