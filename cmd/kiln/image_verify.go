package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/images"
)

type imageVerifyOptions struct {
	JSON bool
	registryFlags
}

func init() { registerImage(newImageVerifyCommand) }

func newImageVerifyCommand() *cobra.Command {
	var o imageVerifyOptions
	cmd := &cobra.Command{
		Use:   "verify [options] IMAGE",
		Short: "Show who signed an image (stored, or TRANSPORT:REF) and whether the signature policy accepts it",
		Long: "Lists each signature of IMAGE with the key that made it and the reference and manifest it names, and checks them with the\n" +
			"signature policy that applies to the image's name. Exits 125 when the policy rejects the image.",
		Args: exactArgs(1, "an image"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImageVerify(cmd, o, args[0])
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.JSON, "json", false, "print as JSON")
	o.registryFlags.add(f)
	return cmd
}

func runImageVerify(cmd *cobra.Command, o imageVerifyOptions, name string) error {
	ctx := cmd.Context()
	st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := images.Verify(ctx, st, name, images.VerifyOptions{Trust: images.Trust{PolicyPath: o.SignaturePolicy}, System: o.systemContext()})
	if err != nil {
		return err
	}
	if o.JSON {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), string(b))
	} else {
		printVerify(cmd.OutOrStdout(), rep)
	}
	if !rep.Accepted {
		return fmt.Errorf("%s: %s", rep.Image, rep.Problem)
	}
	return nil
}

func printVerify(w io.Writer, rep images.VerifyReport) {
	fmt.Fprintf(w, "Image:     %s\nManifest:  %s\nPolicy:    %s: %v\n", rep.Image, rep.ManifestDigest, rep.Scope, rep.Requirements)
	if len(rep.Signatures) == 0 {
		fmt.Fprintln(w, "Signatures: none")
	}
	for i, s := range rep.Signatures {
		verdict := "accepted"
		if !s.Accepted {
			verdict = "not accepted: " + s.Problem
		}
		fmt.Fprintf(w, "Signature %d: %s by %s for %s (%s): %s\n", i+1, s.Format, orUnknown(s.Signer), orUnknown(s.DockerReference), orUnknown(string(s.ManifestDigest)), verdict)
	}
	if rep.Accepted {
		fmt.Fprintln(w, "Verdict:   accepted")
	} else {
		fmt.Fprintln(w, "Verdict:   rejected")
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}
