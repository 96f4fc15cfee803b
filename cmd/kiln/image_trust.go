package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/digestio"
	"github.com/kiln-build/kiln/internal/policy"
	"github.com/kiln-build/kiln/internal/transport"
)

func init() { registerImage(newImageTrustCommand) }

// newImageTrustCommand is `podman image trust`: show and set the
// signature policy (policy.json).
func newImageTrustCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trust",
		Short: "Show and set the signature policy images are pulled by (policy.json), as podman image trust",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newTrustShowCommand(), newTrustSetCommand())
	return cmd
}

type trustShowOptions struct {
	JSON, Raw, NoHeading bool
	PolicyPath, RegDir   string
}

func newTrustShowCommand() *cobra.Command {
	var o trustShowOptions
	cmd := &cobra.Command{
		Use:   "show [options] [REGISTRY]",
		Short: "Show the signature policy",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTrustShow(cmd, o, args)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.JSON, "json", "j", false, "print as JSON")
	f.BoolVar(&o.Raw, "raw", false, "print the policy file as it is")
	f.BoolVarP(&o.NoHeading, "noheading", "n", false, "do not print column headings")
	f.StringVar(&o.PolicyPath, "policypath", policy.DefaultPath, "policy file")
	f.StringVar(&o.RegDir, "registrypath", "", "registries.d directory (default /etc/containers/registries.d)")
	return cmd
}

func runTrustShow(cmd *cobra.Command, o trustShowOptions, args []string) error {
	raw, err := os.ReadFile(o.PolicyPath)
	if err != nil {
		return fmt.Errorf("reading the signature policy: %w", err)
	}
	if o.Raw {
		_, err := cmd.OutOrStdout().Write(raw)
		return err
	}
	p, err := policy.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", o.PolicyPath, err)
	}
	sys := &transport.SystemContext{RegistriesDir: o.RegDir, Env: os.Getenv}
	var entries []policy.Entry
	for _, e := range p.Describe() {
		if len(args) > 0 && e.RepoName != args[0] {
			continue
		}
		if e.Transport == "repository" {
			e.Store = transport.SignatureStore(sys, e.RepoName)
		}
		entries = append(entries, e)
	}
	if o.JSON {
		b, err := json.MarshalIndent(entries, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(cmd.OutOrStdout(), string(b))
		return err
	}
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 12, 2, 2, ' ', 0)
	if !o.NoHeading {
		fmt.Fprintln(w, "TRANSPORT\tNAME\tTYPE\tID\tSTORE")
	}
	for _, e := range entries {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", e.Transport, e.RepoName, e.Type, e.ID, e.Store)
	}
	return w.Flush()
}

type trustSetOptions struct {
	Type       string
	Keys       []string
	PolicyPath string
}

func newTrustSetCommand() *cobra.Command {
	var o trustSetOptions
	cmd := &cobra.Command{
		Use:   "set [options] REGISTRY",
		Short: "Set the signature policy of a registry, namespace or repository, or the default",
		Long: "Set what images of REGISTRY (a registry, registry/namespace or registry/repository; \"default\" for every other) need.\n" +
			"Several --pubkeysfile are alternatives: a signature by any of them is enough, as a key rotation needs (Podman needs all of them).",
		Args: exactArgs(1, "a registry, namespace or repository, or default"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTrustSet(o, args[0])
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Type, "type", "t", "signedBy", "trust type: signedBy, sigstoreSigned, accept or reject")
	f.StringSliceVarP(&o.Keys, "pubkeysfile", "f", nil, "public key file to trust (several for alternatives); it must exist")
	f.StringVar(&o.PolicyPath, "policypath", policy.DefaultPath, "policy file")
	return cmd
}

func runTrustSet(o trustSetOptions, scope string) error {
	t, err := policy.ParseTrustType(o.Type)
	if err != nil {
		return err
	}
	for _, k := range o.Keys {
		if _, err := os.Stat(k); err != nil {
			return fmt.Errorf("public key file: %w", err)
		}
	}
	raw, err := os.ReadFile(o.PolicyPath)
	p := &policy.Policy{Default: policy.Requirements{&policy.InsecureAcceptAnything{}}}
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("reading the signature policy: %w", err)
	default:
		if p, err = policy.Parse(raw); err != nil {
			return fmt.Errorf("%s: %w", o.PolicyPath, err)
		}
	}
	if err := p.Set(strings.TrimPrefix(scope, "docker://"), t, o.Keys); err != nil {
		return err
	}
	out, err := p.MarshalIndent()
	if err != nil {
		return err
	}
	return digestio.WriteFileAtomic(o.PolicyPath, out, 0o644)
}
