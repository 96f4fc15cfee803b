package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
)

func init() { registerManifest(newManifestCreateCommand) }

func newManifestCreateCommand() *cobra.Command {
	var o manifestAddOptions
	var amend bool
	cmd := &cobra.Command{
		Use:   "create [options] LIST [IMAGE...]",
		Short: "Create a manifest list in local storage, with the images given",
		Args:  minArgs(1, "a name for the manifest list"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			name, err := normalizeListName(args[0])
			if err != nil {
				return err
			}
			st, err := openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			raw, mt := transport.NewIndex()
			err = st.CreateManifestList(ctx, store.ManifestList{Name: name, Index: raw, MediaType: mt})
			if err != nil && !(amend && errors.Is(err, store.ErrManifestListExists)) {
				return err
			}
			for _, ref := range args[1:] {
				if _, err := addToManifestList(ctx, st, name, ref, o); err != nil {
					return err
				}
			}
			fmt.Fprintln(cmd.OutOrStdout(), name)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.All, "all", false, "when an IMAGE is a manifest list, add every image it lists")
	o.registryFlags.add(f)
	f.BoolVar(&amend, "amend", false, "use the list of that name if there is one")
	addUnsupportedFlags(f, "annotation")
	return cmd
}
