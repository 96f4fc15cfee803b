package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/images"
)

type rmiOptions struct {
	images.RemoveOptions
	// Prune removes the dangling images instead of those named.
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
			switch {
			case len(args) == 0 && !o.All && !o.Prune:
				return errors.New("image name or ID must be specified")
			case len(args) > 0 && o.All:
				return errors.New("when using the --all switch, you may not pass any images names or IDs")
			case o.All && o.Prune:
				return errors.New("when using the --all switch, you may not use --prune switch")
			case len(args) > 0 && o.Prune:
				return errors.New("when using the --prune switch, you may not pass any images names or IDs")
			}
			st, err := openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			var removed []images.Removal
			if o.Prune {
				removed, err = images.PruneDangling(ctx, st)
			} else {
				removed, err = images.Remove(ctx, st, args, o.RemoveOptions)
			}
			// Buildah's order: every name taken off, then every image deleted.
			out := cmd.OutOrStdout()
			for _, r := range removed {
				for _, n := range r.Untagged {
					fmt.Fprintf(out, "untagged: %s\n", n)
				}
			}
			for _, r := range removed {
				if r.Deleted != "" {
					fmt.Fprintln(out, r.Deleted)
				}
			}
			if err == nil {
				return nil
			}
			var list errorList
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				list = j.Unwrap()
			} else {
				list = errorList{err}
			}
			return list
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.All, "all", "a", false, "remove all images")
	f.BoolVarP(&o.Force, "force", "f", false, "also remove containers using the image, and every name of it")
	f.BoolVarP(&o.Prune, "prune", "p", false, "remove the dangling images (unnamed, not a build's intermediate step, used by no container)")
	return optionsFirst(cmd)
}
