package main

import "github.com/spf13/cobra"

func init() { register(newStorageCommand) }

// storageCommands are the subcommands of `kiln storage`; each one's file
// adds itself with registerStorage from its init function.
var storageCommands []func() *cobra.Command

func registerStorage(newCmd func() *cobra.Command) {
	storageCommands = append(storageCommands, newCmd)
}

func newStorageCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "storage",
		Short: "Set up, inspect, check, export, import and migrate the store",
		Args:  cobra.NoArgs,
	}
	for _, c := range storageCommands {
		cmd.AddCommand(c())
	}
	return cmd
}
