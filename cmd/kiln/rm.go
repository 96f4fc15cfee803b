package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
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
				return fmt.Errorf("rm needs a container name or ID, or --all")
			}
			if len(args) > 0 && o.All {
				return fmt.Errorf("rm: give containers or --all, not both")
			}
			st, err := openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			ctrs, err := selectContainers(ctx, st, args, o.All)
			if err != nil && len(ctrs) == 0 {
				return err
			}
			errs := []error{err}
			for _, c := range ctrs {
				if err := c.Remove(ctx); err != nil {
					errs = append(errs, fmt.Errorf("removing %s: %w", c.Name(), err))
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), c.ID())
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVarP(&o.All, "all", "a", false, "remove all working containers")
	return optionsFirst(cmd)
}
