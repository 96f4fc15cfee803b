package main

import (
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/images"
	"github.com/kiln-build/kiln/internal/transport"
)

type imageCopyOptions struct {
	All, Quiet, RemoveSignatures  bool
	Format, MultiArch, DigestFile string
	CompressFormat                string
	CompressLevel                 int
	AuthFile                      string
	OS, Arch, Variant             string
	Src, Dest                     registryFlags
	retryFlags
	sign   signFlags
	Policy string
}

func init() { registerImage(newImageCopyCommand) }

func newImageCopyCommand() *cobra.Command {
	var o imageCopyOptions
	cmd := &cobra.Command{
		Use:   "copy [options] SOURCE DESTINATION",
		Short: "Copy an image (or manifest list) between two transports without the local store (like skopeo copy)",
		Args:  exactArgs(2, "a source and a destination, such as docker://HOST/REPO:TAG oci:DIR:TAG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImageCopy(cmd, o, args[0], args[1])
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.All, "all", "a", false, "copy every image of a manifest list, and the list")
	f.StringVar(&o.MultiArch, "multi-arch", "system", "for a manifest list: system (this machine's image) or all")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "do not print progress")
	f.BoolVar(&o.RemoveSignatures, "remove-signatures", false, "do not copy signatures")
	f.StringVarP(&o.Format, "format", "f", "", "manifest type to write: oci or v2s2 (default: keep)")
	f.StringVar(&o.DigestFile, "digestfile", "", "write the digest of the written manifest to this file")
	f.StringVar(&o.CompressFormat, "dest-compress-format", "", "compress uncompressed layers with gzip or zstd")
	f.IntVar(&o.CompressLevel, "dest-compress-level", 0, "compression level")
	f.StringVar(&o.AuthFile, "authfile", "", "authentication file for both sides")
	f.StringVar(&o.OS, "override-os", "", "pick the image for this OS from a manifest list")
	f.StringVar(&o.Arch, "override-arch", "", "pick the image for this architecture from a manifest list")
	f.StringVar(&o.Variant, "override-variant", "", "pick the image for this variant from a manifest list")
	o.Src.addPrefixed(f, "src-")
	o.Dest.addPrefixed(f, "dest-")
	f.IntVar(&o.Retry, "retry-times", 3, "number of times to retry a failed blob copy")
	f.DurationVar(&o.RetryDelay, "retry-delay", 0, "delay before the first retry (default 1s, doubled each time)")
	o.sign.add(f)
	f.StringVar(&o.Policy, "policy", "", "signature policy file the source must meet (default /etc/containers/policy.json)")
	f.StringVar(&o.Policy, "signature-policy", "", "the same as --policy")
	f.StringVar(&o.Src.RegistriesDir, "registries.d", "", "directory of registries.d files that say where signatures are stored")
	addUnsupportedFlags(f, "encryption-key", "decryption-key", "preserve-digests!", "dest-decompress!", "dest-precompute-digests!", "image-parallel-copies")
	return cmd
}

func (o imageCopyOptions) copyOptions() (transport.CopyOptions, error) {
	c := transport.CopyOptions{
		RemoveSignatures: o.RemoveSignatures, CompressionLevel: o.CompressLevel, Logger: logger,
		Platform: transport.Platform{OS: o.OS, Architecture: o.Arch, Variant: o.Variant},
	}
	var err error
	if c.Format, err = transport.ParseFormat(o.Format); err != nil {
		return c, err
	}
	if c.Compression, err = transport.ParseCompression(o.CompressFormat); err != nil {
		return c, err
	}
	switch o.MultiArch {
	case "system", "":
		c.All = o.All
	case "all":
		c.All = true
	default:
		return c, usageErrorf("unknown --multi-arch %q: use system or all", o.MultiArch)
	}
	return c, nil
}

func runImageCopy(cmd *cobra.Command, o imageCopyOptions, from, to string) error {
	co := images.CopyOptions{}
	var err error
	if co.Copy, err = o.copyOptions(); err != nil {
		return err
	}
	for _, side := range []*registryFlags{&o.Src, &o.Dest} {
		if side.AuthFile == "" {
			side.AuthFile = o.AuthFile
		}
	}
	o.Dest.RegistriesDir = o.Src.RegistriesDir
	co.Source, co.Destination = o.Src.systemContext(), o.Dest.systemContext()
	co.Trust = images.Trust{PolicyPath: o.Policy}
	if co.Sign, err = o.sign.options(); err != nil {
		return err
	}
	o.retryFlags.apply(co.Destination, &co.Copy)
	o.retryFlags.apply(co.Source, &transport.CopyOptions{})
	prog := newCopyProgress(cmd.ErrOrStderr(), o.Quiet)
	co.Progress = prog.progress()
	d, err := images.Copy(cmd.Context(), from, to, co)
	prog.finish()
	if err != nil {
		return err
	}
	return writeDigestFile(o.DigestFile, d.String())
}
