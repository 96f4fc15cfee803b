package main

import "github.com/spf13/cobra"

func init() { register(newImageCommand) }

// imageCommands are the subcommands of `kiln image`; each one's file
// adds itself with registerImage from its init function.
var imageCommands []func() *cobra.Command

func registerImage(newCmd func() *cobra.Command) {
	imageCommands = append(imageCommands, newCmd)
}

func newImageCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Inspect, copy, tag-list, delete and prune images, in the store or in any transport",
		Args:  cobra.NoArgs,
	}
	for _, c := range imageCommands {
		cmd.AddCommand(c())
	}
	return cmd
}
