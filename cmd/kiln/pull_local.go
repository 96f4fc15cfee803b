package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/store"
)

// ensureImage makes sure ref is in the store per the pull policy. Until
// pulling is wired, only local images can be used.
func ensureImage(cmd *cobra.Command, st *store.Store, ref, policy string, rf registryFlags, quiet bool) error {
	switch policy {
	case "missing", "always", "never", "newer", "ifmissing", "ifnewer", "true", "false":
	default:
		return fmt.Errorf("unknown --pull policy %q: use missing, always, never or newer", policy)
	}
	_, err := st.LookupImage(cmd.Context(), ref)
	if errors.Is(err, store.ErrImageUnknown) {
		return fmt.Errorf("image %q is not in local storage (%w); pulling from registries is not wired into this verb yet: use `kiln pull` first", ref, err)
	}
	return err
}
