package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// registryFlags are the per-verb flags of every verb that may talk to a
// registry, named as Buildah names them.
type registryFlags struct {
	TLSVerify       bool
	Creds           string
	CertDir         string
	AuthFile        string
	SignaturePolicy string
}

func (r *registryFlags) add(f *pflag.FlagSet) {
	f.BoolVar(&r.TLSVerify, "tls-verify", true, "require HTTPS and verify certificates when talking to registries")
	f.StringVar(&r.Creds, "creds", "", "registry credentials as USERNAME[:PASSWORD]")
	f.StringVar(&r.CertDir, "cert-dir", "", "directory of certificates for the registry")
	f.StringVar(&r.AuthFile, "authfile", "", "path of the authentication file")
	f.StringVar(&r.SignaturePolicy, "signature-policy", "", "signature policy file (accepted; kiln does not verify signatures)")
	_ = f.MarkHidden("signature-policy")
}

// addIgnoredFlags accepts Buildah flags that have no meaning in kiln, so
// that scripts written for Buildah still run.
func addIgnoredFlags(f *pflag.FlagSet, names ...string) {
	for _, n := range names {
		if f.Lookup(n) == nil {
			f.StringArray(n, nil, "accepted for compatibility with Buildah")
			_ = f.MarkHidden(n)
		}
	}
}

// exactArgs is cobra.ExactArgs with an error that names what is missing.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%s needs %s (got %d arguments)", cmd.CommandPath(), what, len(args))
		}
		return nil
	}
}

// minArgs is cobra.MinimumNArgs with an error that names what is missing.
func minArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return fmt.Errorf("%s needs %s", cmd.CommandPath(), what)
		}
		return nil
	}
}
