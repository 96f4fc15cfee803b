package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

type unmountOptions struct{ All bool }

func init() { register(newUnmountCommand) }

func newUnmountCommand() *cobra.Command {
	var o unmountOptions
	cmd := &cobra.Command{
		Use:     "unmount [CONTAINER...]",
		Aliases: []string{"umount"},
		Short:   "Unmount a working container's root filesystem",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if len(args) == 0 && !o.All {
				return fmt.Errorf("unmount needs a container name or ID, or --all")
			}
			st, err := openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			ctrs, err := selectContainers(ctx, st, args, o.All)
			if err != nil {
				return err
			}
			for _, c := range ctrs {
				if err := c.Unmount(ctx, o.All); err != nil {
					return fmt.Errorf("unmounting %s: %w", c.Name(), err)
				}
				if !o.All {
					fmt.Fprintln(cmd.OutOrStdout(), c.ID())
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&o.All, "all", "a", false, "unmount all working containers")
	return optionsFirst(cmd)
}
