package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/images"
	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
)

type pullOptions struct {
	Quiet            bool
	AllTags          bool
	RemoveSignatures bool
	Policy           string
	registryFlags
	retryFlags
	platformFlags
}

func init() { register(newPullCommand) }

func newPullCommand() *cobra.Command {
	var o pullOptions
	cmd := &cobra.Command{
		Use:   "pull [options] IMAGE",
		Short: "Copy an image from a transport into local storage",
		Args:  exactArgs(1, "an image reference"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPull(cmd, o, args[0])
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "do not print progress")
	f.BoolVarP(&o.AllTags, "all-tags", "a", false, "pull every tag of the repository")
	o.registryFlags.add(f)
	o.retryFlags.add(f)
	o.platformFlags.add(f)
	f.BoolVar(&o.RemoveSignatures, "remove-signatures", false, "do not keep the image's signatures")
	// Buildah's default: an image the store has is not pulled again.
	f.StringVar(&o.Policy, "policy", "missing", "pull policy: missing, always, never or newer")
	addUnsupportedFlags(f, "decryption-key")
	return optionsFirst(cmd)
}

func runPull(cmd *cobra.Command, o pullOptions, ref string) error {
	ctx := cmd.Context()
	policy, err := images.ParsePullPolicy(o.Policy)
	if err != nil {
		return err
	}
	if err := o.registryFlags.check(); err != nil {
		return err
	}
	p, err := o.platformFlags.platform()
	if err != nil {
		return err
	}
	po := newPullOptions(o.registryFlags, o.retryFlags, p)
	po.Copy.RemoveSignatures = o.RemoveSignatures
	refs := []string{ref}
	if o.AllTags {
		if refs, err = images.RepositoryTags(ctx, ref, po.System); err != nil {
			return err
		}
	}
	st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, r := range refs {
		prog := newCopyProgress(cmd.ErrOrStderr(), o.Quiet)
		po.Progress = prog.progress()
		var img store.Image
		if policy == images.PullAlways {
			img, err = images.Pull(ctx, st, r, po)
		} else {
			// Ensure reads a registry name without its transport, as
			// from gives it.
			img, err = images.Ensure(ctx, st, strings.TrimPrefix(r, "docker://"), images.EnsureOptions{Policy: policy, Pull: po, Logger: logger})
		}
		prog.finish()
		if err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), img.ID)
	}
	return nil
}

// newPullOptions turns the flags pull, from and build share into how
// they read images; the zero flags pull this machine's platform with the
// default registry settings and retries. Progress is the caller's.
func newPullOptions(r registryFlags, retry retryFlags, p transport.Platform) images.PullOptions {
	po := images.PullOptions{System: r.systemContext(), Copy: transport.CopyOptions{Platform: p, Logger: logger},
		Trust: images.Trust{PolicyPath: r.SignaturePolicy}}
	retry.apply(po.System, &po.Copy)
	return po
}
