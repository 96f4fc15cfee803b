package main

import (
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/images"
)

func init() { register(newTagCommand) }

func newTagCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "tag IMAGE NAME [NAME...]",
		Short: "Add names to a local image or manifest list",
		Args:  minArgs(2, "an image and at least one new name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			return images.Tag(ctx, st, args[0], args[1:])
		},
	}
}
