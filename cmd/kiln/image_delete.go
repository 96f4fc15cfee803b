package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/transport"
)

func init() { registerImage(newImageDeleteCommand) }

func newImageDeleteCommand() *cobra.Command {
	var o registryFlags
	cmd := &cobra.Command{
		Use:   "delete [options] docker://HOST/REPO:TAG|@DIGEST",
		Short: "Delete an image's manifest from a registry (like skopeo delete)",
		Args:  exactArgs(1, "an image in a registry, such as docker://HOST/REPO:TAG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := transport.ParseReference(args[0])
			if err != nil {
				return err
			}
			if err := transport.Delete(cmd.Context(), r, o.systemContext()); err != nil {
				return fmt.Errorf("deleting %s: %w", args[0], err)
			}
			return nil
		},
	}
	o.add(cmd.Flags())
	return cmd
}
