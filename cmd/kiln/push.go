package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/transport"
)

type pushOptions struct {
	Format, CompressionFormat, DigestFile string
	CompressionLevel                      int
	Quiet, RemoveSignatures, All          bool
	DaemonHost                            string
	registryFlags
}

func init() { register(newPushCommand) }

func newPushCommand() *cobra.Command {
	var o pushOptions
	cmd := &cobra.Command{
		Use:   "push [options] IMAGE [DESTINATION]",
		Short: "Copy an image from local storage to a transport (docker://, docker-daemon:, oci:, oci-archive:, docker-archive:, dir:)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			dest := args[0]
			if len(args) == 2 {
				dest = args[1]
			}
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
			img, err := st.LookupImage(ctx, args[0])
			if err != nil {
				return err
			}
			dst, err := ref.NewDestination(ctx, o.systemContext())
			if err != nil {
				return fmt.Errorf("opening %s: %w", ref, err)
			}
			defer dst.Close()
			d, err := transport.Copy(ctx, dst, st.NewImageSource(ctx, img), copts)
			if err != nil {
				return fmt.Errorf("pushing %s to %s: %w", args[0], ref, err)
			}
			if o.DigestFile != "" {
				if err := os.WriteFile(o.DigestFile, []byte(d), 0o644); err != nil {
					return err
				}
			}
			if !o.Quiet {
				fmt.Fprintf(cmd.ErrOrStderr(), "Writing manifest to image destination\n")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Format, "format", "f", "", "manifest type: oci or v2s2 (default: keep)")
	f.StringVar(&o.CompressionFormat, "compression-format", "", "compression for uncompressed layers: gzip or zstd")
	f.IntVar(&o.CompressionLevel, "compression-level", 0, "compression level")
	f.StringVar(&o.DigestFile, "digestfile", "", "write the manifest digest to this file")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "do not print progress")
	f.BoolVar(&o.RemoveSignatures, "remove-signatures", false, "do not copy signatures")
	f.StringVar(&o.DaemonHost, "daemon-host", "", "Docker daemon address for docker-daemon: (default $DOCKER_HOST)")
	o.registryFlags.add(f)
	addIgnoredFlags(f, "sign-by", "encryption-key", "disable-compression", "retry", "retry-delay", "rm", "all", "force-compression")
	return cmd
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
	c.Compression, err = transport.ParseCompression(comp)
	return c, err
}

// systemContext turns the registry flags into the transport's settings.
func (r registryFlags) systemContext() *transport.SystemContext {
	sys := &transport.SystemContext{
		AuthFile: r.AuthFile, Creds: r.Creds, CertDir: r.CertDir,
		RegistriesConf: globals.RegistriesConf, RegistriesConfDir: globals.RegistriesConfDir,
		ShortNameAliasConf: globals.ShortNameAliasConf, Logger: logger, Env: os.Getenv,
	}
	tls := r.TLSVerify
	sys.TLSVerify = &tls
	return sys
}
