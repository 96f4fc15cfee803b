package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
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

// listInstanceSource opens the source an instance of a stored list was
// recorded with: a local image ID, or a transport reference.
func listInstanceSource(ctx context.Context, st *store.Store, ml store.ManifestList, sys *transport.SystemContext) func(context.Context, digest.Digest) (transport.Source, error) {
	return func(ctx context.Context, d digest.Digest) (transport.Source, error) {
		where, ok := ml.Instances[d]
		if !ok {
			return nil, fmt.Errorf("manifest list %s does not say where instance %s is", ml.Name, d)
		}
		if isFullImageID(where) {
			img, err := st.Image(ctx, where)
			if err != nil {
				return nil, fmt.Errorf("instance %s of %s: %w", d, ml.Name, err)
			}
			return st.NewImageSource(ctx, img), nil
		}
		r, err := transport.ParseReference(where)
		if err != nil {
			return nil, err
		}
		return r.NewSource(ctx, sys)
	}
}

func isFullImageID(s string) bool { return len(s) == 64 && isImageID(s) }

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
