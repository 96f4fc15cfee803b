package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
)

type pullOptions struct {
	Quiet bool
	registryFlags
}

func init() { register(newPullCommand) }

func newPullCommand() *cobra.Command {
	var o pullOptions
	cmd := &cobra.Command{
		Use:   "pull [options] IMAGE",
		Short: "Copy an image from a transport into local storage",
		Args:  exactArgs(1, "an image reference"),
		RunE: func(cmd *cobra.Command, args []string) error {
			img, err := pullImage(cmd, args[0], o.registryFlags)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), img.ID)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&o.Quiet, "quiet", "q", false, "do not print progress")
	o.registryFlags.add(cmd.Flags())
	addIgnoredFlags(cmd.Flags(), "all-tags", "platform", "arch", "os", "variant", "retry", "retry-delay", "decryption-key", "policy", "remove-signatures")
	return cmd
}

// pullImage copies ref into the store and names it as Buildah would:
// registry images by their full name, others by the name in the reference.
func pullImage(cmd *cobra.Command, ref string, rf registryFlags) (store.Image, error) {
	ctx := cmd.Context()
	r, err := transport.ParseReference(ref)
	if err != nil {
		return store.Image{}, err
	}
	st, err := openStore(ctx)
	if err != nil {
		return store.Image{}, err
	}
	defer st.Close()
	src, err := r.NewSource(ctx, rf.systemContext())
	if err != nil {
		return store.Image{}, fmt.Errorf("opening %s: %w", ref, err)
	}
	defer src.Close()
	var names []string
	if r.Transport() == "docker" {
		if n, err := image.NormalizeName(strings.TrimPrefix(strings.TrimPrefix(r.String(), "docker://"), "//")); err == nil {
			names = append(names, n)
		}
	}
	dst := st.NewImageDestination(names)
	if _, err := transport.Copy(ctx, dst, src, transport.CopyOptions{Logger: logger}); err != nil {
		return store.Image{}, fmt.Errorf("pulling %s: %w", ref, err)
	}
	return dst.Image(), nil
}
