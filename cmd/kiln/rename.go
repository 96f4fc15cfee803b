package main

import (
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/container"
)

func init() { register(newRenameCommand) }

func newRenameCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "rename CONTAINER NEW-NAME",
		Short: "Rename a working container",
		Args:  exactArgs(2, "a container and a new name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			c, err := container.Open(ctx, st, args[0])
			if err != nil {
				return err
			}
			return c.Rename(ctx, args[1])
		},
	}
}
