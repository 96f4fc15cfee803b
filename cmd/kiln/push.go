package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/images"
	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
)

type pushOptions struct {
	DigestFile                           string
	Quiet, All                           bool
	DisableCompression, ForceCompression bool
	copyFlags
	registryFlags
	retryFlags
	sign signFlags
}

func init() { register(newPushCommand) }

func newPushCommand() *cobra.Command {
	var o pushOptions
	cmd := &cobra.Command{
		Use:   "push [options] IMAGE [DESTINATION]",
		Short: "Copy an image (or manifest list) from local storage to a transport (docker://, docker-daemon:, oci:, oci-archive:, docker-archive:, dir:)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dest := args[0]
			if len(args) == 2 {
				dest = args[1]
			}
			return runPush(cmd, o, args[0], dest)
		},
	}
	f := cmd.Flags()
	o.copyFlags.add(f, "compression for layers kiln made: gzip or zstd (default gzip)")
	f.BoolVarP(&o.DisableCompression, "disable-compression", "D", false, "send layers kiln made uncompressed")
	f.BoolVar(&o.ForceCompression, "force-compression", false, "compress every layer with --compression-format, those that came compressed otherwise or uncompressed too")
	f.StringVar(&o.DigestFile, "digestfile", "", "write the manifest digest to this file")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "do not print progress")
	f.BoolVar(&o.All, "all", true, "when IMAGE is a manifest list, push the images it lists too")
	o.registryFlags.add(f)
	o.retryFlags.add(f)
	o.sign.add(f)
	addUnsupportedFlags(f, "encryption-key", "rm!")
	return optionsFirst(cmd)
}

func runPush(cmd *cobra.Command, o pushOptions, name, dest string) error {
	ctx := cmd.Context()
	if err := o.registryFlags.check(); err != nil {
		return err
	}
	sr, toStore, err := images.ParseStorageRef(dest)
	if err != nil {
		return err
	}
	var ref transport.Ref
	if !toStore {
		if ref, err = transport.ParseReference(dest); err != nil {
			return err
		}
	}
	po, err := o.pushOptions()
	if err != nil {
		return err
	}
	po.List.Instances = o.All
	st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	if toStore {
		return pushToStore(ctx, cmd, o, st, name, sr, po)
	}
	prog := newCopyProgress(cmd.ErrOrStderr(), o.Quiet)
	po.Progress = prog.progress()
	d, err := images.Push(ctx, st, name, ref, po)
	prog.finish()
	if err != nil {
		return err
	}
	return writeDigestFile(o.DigestFile, d.String())
}

// pushToStore pushes to containers-storage:NAME (a name more in local
// storage) or containers-storage:[DRIVER@ROOT+RUNROOT]NAME (another kiln
// store).
func pushToStore(ctx context.Context, cmd *cobra.Command, o pushOptions, st *store.Store, name string, sr images.StorageRef, po images.PushOptions) error {
	if po.Sign.Enabled() {
		return usageErrorf("--sign-by: kiln signs an image where it is written to (a registry, a layout, ...), not in a store")
	}
	full, err := image.NormalizeName(sr.Name)
	if err != nil {
		return err
	}
	if !sr.Elsewhere() {
		return images.Tag(ctx, st, name, []string{full})
	}
	other, err := openStoreAt(ctx, sr.Root, sr.RunRoot, sr.Driver)
	if err != nil {
		return err
	}
	defer other.Close()
	prog := newCopyProgress(cmd.ErrOrStderr(), o.Quiet)
	po.Progress = prog.progress()
	err = images.PushToStore(ctx, st, name, other, []string{full}, po)
	prog.finish()
	return err
}

func writeDigestFile(path, d string) error {
	if path == "" {
		return nil
	}
	if err := os.WriteFile(path, []byte(d), 0o644); err != nil {
		return fmt.Errorf("writing --digestfile: %w", err)
	}
	return nil
}

// pushOptions turns the flags into images.PushOptions.
func (o pushOptions) pushOptions() (images.PushOptions, error) {
	po := images.PushOptions{System: o.systemContext()}
	var err error
	if po.Copy, err = o.copyFlags.copyOptions(o.DisableCompression, o.ForceCompression); err != nil {
		return po, err
	}
	o.retryFlags.apply(po.System, &po.Copy)
	po.Sign, err = o.sign.options()
	return po, err
}

// copyFlags are the flags push and manifest push share.
type copyFlags struct {
	Format, CompressionFormat string
	CompressionLevel          int
	RemoveSignatures          bool
}

func (c *copyFlags) add(f *pflag.FlagSet, compression string) {
	f.StringVarP(&c.Format, "format", "f", "", "manifest type: oci or v2s2 (default: keep)")
	f.StringVar(&c.CompressionFormat, "compression-format", "", compression)
	f.IntVar(&c.CompressionLevel, "compression-level", 0, "compression level")
	f.BoolVar(&c.RemoveSignatures, "remove-signatures", false, "do not copy signatures")
}

// copyOptions returns the copy options of the flags; disable and force
// are push's --disable-compression and --force-compression.
func (c copyFlags) copyOptions(disable, force bool) (transport.CopyOptions, error) {
	co := transport.CopyOptions{RemoveSignatures: c.RemoveSignatures, CompressionLevel: c.CompressionLevel, Logger: logger}
	var err error
	if c.Format != "" {
		if co.Format, err = transport.ParseFormat(c.Format); err != nil {
			return co, err
		}
	}
	comp := c.CompressionFormat
	if comp == "" {
		comp = "gzip"
	}
	if disable {
		if force || c.CompressionFormat != "" {
			return co, usageErrorf("--disable-compression cannot be used with --force-compression or --compression-format")
		}
		comp = "keep"
	}
	co.Compression, err = transport.ParseCompression(comp)
	co.ForceCompression = force
	return co, err
}
