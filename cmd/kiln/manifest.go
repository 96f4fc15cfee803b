package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store"
)

func init() { register(newManifestCommand) }

// manifestCommands are the subcommands of `kiln manifest`; each one's
// file adds itself with registerManifest from its init function.
var manifestCommands []func() *cobra.Command

func registerManifest(newCmd func() *cobra.Command) {
	manifestCommands = append(manifestCommands, newCmd)
}

func newManifestCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "manifest",
		Short: "Create, edit, inspect, push and remove manifest lists (image indexes) kept in local storage",
		Args:  cobra.NoArgs,
	}
	for _, c := range manifestCommands {
		cmd.AddCommand(c())
	}
	return cmd
}

// normalizeListName gives a new list its full name, as images get theirs.
func normalizeListName(name string) (string, error) {
	n, err := image.NormalizeName(name)
	if err != nil {
		return "", usageErrorf("bad manifest list name %q: %v", name, err)
	}
	return n, nil
}

// listNotFound turns ErrManifestListUnknown into a message that says
// what to do.
func listNotFound(name string, err error) error {
	if errors.Is(err, store.ErrManifestListUnknown) {
		return fmt.Errorf("%q is not a manifest list in local storage (create it with `kiln manifest create %s`): %w", name, name, err)
	}
	return err
}
