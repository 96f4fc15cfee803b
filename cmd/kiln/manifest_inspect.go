package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/images"
	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
)

func init() { registerManifest(newManifestInspectCommand) }

func newManifestInspectCommand() *cobra.Command {
	var o registryFlags
	cmd := &cobra.Command{
		Use:   "inspect [options] LIST",
		Short: "Print a manifest list from local storage, or the manifest of TRANSPORT:REF",
		Args:  exactArgs(1, "a manifest list"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			raw, err := manifestToInspect(cmd, st, args[0], o)
			if err != nil {
				return err
			}
			return printIndented(cmd.OutOrStdout(), raw, args[0])
		},
	}
	o.add(cmd.Flags())
	return cmd
}

// printIndented writes the manifest (or list) of name as manifest inspect
// prints it: indented four spaces, one newline after.
func printIndented(w io.Writer, raw []byte, name string) error {
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "    "); err != nil {
		return fmt.Errorf("formatting manifest of %s: %w", name, err)
	}
	out.WriteByte('\n')
	_, err := w.Write(out.Bytes())
	return err
}

// manifestToInspect returns the stored list named name (or with that
// ID) or, when there is
// none, the top-level manifest of name as a transport reference.
func manifestToInspect(cmd *cobra.Command, st *store.Store, name string, o registryFlags) ([]byte, error) {
	ctx := cmd.Context()
	ml, err := images.LookupList(ctx, st, name)
	if err == nil {
		return ml.Index, nil
	}
	if !errors.Is(err, store.ErrManifestListUnknown) {
		return nil, err
	}
	r, perr := transport.ParseReference(name)
	if perr != nil {
		return nil, listNotFound(name, err)
	}
	src, serr := r.NewSource(ctx, o.systemContext())
	if serr != nil {
		return nil, errors.Join(listNotFound(name, err), fmt.Errorf("reading %s: %w", r, serr))
	}
	defer src.Close()
	raw, _, err := src.Manifest(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("reading manifest of %s: %w", r, err)
	}
	return raw, nil
}
