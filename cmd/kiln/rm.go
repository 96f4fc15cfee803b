package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/container"
)

type rmOptions struct{ All bool }

func init() { register(newRmCommand) }

func newRmCommand() *cobra.Command {
	var o rmOptions
	cmd := &cobra.Command{
		Use:     "rm [CONTAINER...]",
		Aliases: []string{"delete"},
		Short:   "Remove working containers",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if len(args) == 0 && !o.All {
				return errors.New("container ID must be specified")
			}
			if len(args) > 0 && o.All {
				return errors.New("when using the --all switch, you may not pass any containers names or IDs")
			}
			st, err := openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			refs := args
			if o.All {
				all, err := container.All(ctx, st)
				if err != nil {
					return fmt.Errorf("reading working containers: %w", err)
				}
				for _, c := range all {
					refs = append(refs, c.ID())
				}
			}
			trail := errorTrail{w: cmd.ErrOrStderr()}
			for _, ref := range refs {
				c, err := container.Open(ctx, st, ref)
				if err == nil {
					ref = c.Name()
					err = c.Remove(ctx)
				}
				if err != nil {
					trail.add(fmt.Errorf("removing container %q: %w", ref, notKnown(err)))
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), c.ID())
			}
			return trail.err()
		},
	}
	cmd.Flags().BoolVarP(&o.All, "all", "a", false, "remove all working containers")
	return optionsFirst(cmd)
}
