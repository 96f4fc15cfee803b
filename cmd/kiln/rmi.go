package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/images"
)

type rmiOptions struct {
	images.RemoveOptions
	// Prune is accepted for compatibility.
	Prune bool
}

func init() { register(newRmiCommand) }

func newRmiCommand() *cobra.Command {
	var o rmiOptions
	cmd := &cobra.Command{
		Use:   "rmi [options] IMAGE [IMAGE...]",
		Short: "Remove images from local storage",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if len(args) == 0 && !o.All && !o.Prune {
				return fmt.Errorf("rmi needs an image name or ID, or --all")
			}
			st, err := openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			removed, err := images.Remove(ctx, st, args, o.RemoveOptions)
			out := cmd.OutOrStdout()
			for _, r := range removed {
				for _, n := range r.Untagged {
					fmt.Fprintf(out, "untagged: %s\n", n)
				}
				if r.Deleted != "" {
					fmt.Fprintln(out, r.Deleted)
				}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.All, "all", "a", false, "remove all images")
	f.BoolVarP(&o.Force, "force", "f", false, "also remove containers using the image, and every name of it")
	f.BoolVarP(&o.Prune, "prune", "p", false, "accepted for compatibility")
	return optionsFirst(cmd)
}
