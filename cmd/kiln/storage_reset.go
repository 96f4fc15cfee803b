package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/store"
)

type storageResetOptions struct{ Force bool }

func init() { registerStorage(newStorageResetCommand) }

func newStorageResetCommand() *cobra.Command {
	var o storageResetOptions
	cmd := &cobra.Command{
		Use:   "reset --force",
		Short: "Remove every image, layer, working container and the build cache",
		Long: `Reset wipes the store: it unmounts everything mounted in it, removes every
snapshot through its driver and every file under the root and run root, and
prints what it removed. The root directory itself stays (it may be a mount
point), as does storage.conf. It refuses without --force, and must not run while
other kiln processes use the store.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := storageSettings()
			if err != nil {
				return err
			}
			if !o.Force {
				return fmt.Errorf("reset removes every image, layer, working container and the build cache in %s: run it again with --force", s.Root)
			}
			rep, err := store.Reset(cmd.Context(), store.Options{Root: s.Root, RunRoot: s.RunRoot, Driver: s.Driver, DriverOpts: s.DriverOpts})
			out := cmd.OutOrStdout()
			for _, mp := range rep.Unmounted {
				fmt.Fprintf(out, "unmounted %s\n", mp)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "removed %d images (%d names), %d containers, %d layers, %d blobs, %d build cache entries: %s from %s\n",
				rep.Images, rep.Names, rep.Containers, rep.Layers, rep.Blobs, rep.CacheEntries, store.HumanBytes(rep.Bytes), rep.Root)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&o.Force, "force", "f", false, "really remove everything")
	return cmd
}
