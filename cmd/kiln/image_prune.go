package main

import (
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/store"
)

func init() { registerImage(newImagePruneCommand) }

func newImagePruneCommand() *cobra.Command {
	var o pruneOptions
	cmd := &cobra.Command{
		Use:   "prune [options]",
		Short: "Remove unused images, then the layers and blobs nothing references",
		Long: `Image prune removes images without a name that no working container and no
build cache entry uses (with --all, named ones too), then every layer and blob
nothing references. --filter until=TIME and label=KEY[=VALUE] (label!=...) narrow
the images removed. The build cache stays: kiln prune removes it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			what := "unnamed images no container uses"
			if o.All {
				what = "all images no container uses"
			}
			return runPrune(cmd, o, what, store.PruneOptions{All: o.All})
		},
	}
	addPruneFlags(cmd, &o)
	return cmd
}
