package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
)

type pushOptions struct {
	Format, CompressionFormat, DigestFile string
	CompressionLevel                      int
	Quiet, RemoveSignatures, All          bool
	DisableCompression, ForceCompression  bool
	registryFlags
	retryFlags
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
	f.StringVarP(&o.Format, "format", "f", "", "manifest type: oci or v2s2 (default: keep)")
	f.StringVar(&o.CompressionFormat, "compression-format", "", "compression for layers kiln made: gzip or zstd (default gzip)")
	f.BoolVarP(&o.DisableCompression, "disable-compression", "D", false, "send layers kiln made uncompressed")
	f.BoolVar(&o.ForceCompression, "force-compression", false, "compress every layer with --compression-format, those that came compressed otherwise or uncompressed too")
	f.IntVar(&o.CompressionLevel, "compression-level", 0, "compression level")
	f.StringVar(&o.DigestFile, "digestfile", "", "write the manifest digest to this file")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "do not print progress")
	f.BoolVar(&o.RemoveSignatures, "remove-signatures", false, "do not copy signatures")
	f.BoolVar(&o.All, "all", true, "when IMAGE is a manifest list, push the images it lists too")
	o.registryFlags.add(f)
	o.retryFlags.add(f)
	addIgnoredFlags(f, "sign-by", "encryption-key", "rm")
	return cmd
}

func runPush(cmd *cobra.Command, o pushOptions, name, dest string) error {
	ctx := cmd.Context()
	ref, err := transport.ParseReference(dest)
	if err != nil {
		return err
	}
	copts, err := pushCopyOptions(o)
	if err != nil {
		return err
	}
	st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	img, err := st.LookupImage(ctx, name)
	if errors.Is(err, store.ErrImageUnknown) {
		if _, lerr := st.ManifestList(ctx, name); lerr == nil {
			mo := manifestPushOptions{All: o.All, DigestFile: o.DigestFile, Quiet: o.Quiet, registryFlags: o.registryFlags, retryFlags: o.retryFlags}
			return pushManifestList(cmd, st, name, ref, mo, copts)
		}
	}
	if err != nil {
		return err
	}
	sys := o.systemContext()
	o.retryFlags.apply(sys, &copts)
	d, err := copyWithProgress(cmd, ref, sys, st.NewImageSource(ctx, img), copts, o.Quiet)
	if err != nil {
		return fmt.Errorf("pushing %s to %s: %w", name, ref, err)
	}
	return writeDigestFile(o.DigestFile, d.String())
}

// copyWithProgress opens ref for writing and copies src into it, showing
// progress on the command's stderr unless quiet.
func copyWithProgress(cmd *cobra.Command, ref transport.Ref, sys *transport.SystemContext, src transport.Source, copts transport.CopyOptions, quiet bool) (digest.Digest, error) {
	ctx := cmd.Context()
	dst, err := ref.NewDestination(ctx, sys)
	if err != nil {
		return "", fmt.Errorf("opening %s: %w", ref, err)
	}
	defer dst.Close()
	prog := newCopyProgress(cmd.ErrOrStderr(), quiet)
	copts.Progress = prog.callback()
	d, err := transport.Copy(ctx, dst, src, copts)
	prog.finish()
	if err != nil {
		return "", err
	}
	prog.printf("Writing manifest to image destination\n")
	return d, nil
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

func pushCopyOptions(o pushOptions) (transport.CopyOptions, error) {
	c := transport.CopyOptions{RemoveSignatures: o.RemoveSignatures, CompressionLevel: o.CompressionLevel, Logger: logger}
	var err error
	if o.Format != "" {
		if c.Format, err = transport.ParseFormat(o.Format); err != nil {
			return c, err
		}
	}
	comp := o.CompressionFormat
	if comp == "" {
		comp = "gzip"
	}
	if o.DisableCompression {
		if o.ForceCompression || o.CompressionFormat != "" {
			return c, usageErrorf("--disable-compression cannot be used with --force-compression or --compression-format")
		}
		comp = "keep"
	}
	c.Compression, err = transport.ParseCompression(comp)
	c.ForceCompression = o.ForceCompression
	return c, err
}
