package main

import (
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/image"
)

func init() { register(newTagCommand) }

func newTagCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "tag IMAGE NAME [NAME...]",
		Short: "Add names to a local image",
		Args:  minArgs(2, "an image and at least one new name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var names []string
			for _, a := range args[1:] {
				n, err := image.NormalizeName(a)
				if err != nil {
					return err
				}
				names = append(names, n)
			}
			st, err := openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			img, err := st.LookupImage(ctx, args[0])
			if err != nil {
				return err
			}
			return st.AddNames(ctx, img.ID, names)
		},
	}
}
