package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store"
)

// ensureImage makes sure ref is in the store per the pull policy,
// pulling it when it is missing (policies other than missing and never
// are accepted and treated as missing for now).
func ensureImage(cmd *cobra.Command, st *store.Store, ref, policy string, rf registryFlags, quiet bool) error {
	switch policy {
	case "missing", "always", "never", "newer", "ifmissing", "ifnewer", "true", "false":
	default:
		return fmt.Errorf("unknown --pull policy %q: use missing, always, never or newer", policy)
	}
	if _, err := image.ParseReference(ref); err != nil && !isImageID(ref) {
		return err
	}
	_, err := st.LookupImage(cmd.Context(), ref)
	if errors.Is(err, store.ErrImageUnknown) && policy != "never" && policy != "false" {
		if _, perr := pullImage(cmd, ref, rf); perr != nil {
			return fmt.Errorf("image %q is not in local storage, and pulling it failed: %w", ref, perr)
		}
		return nil
	}
	return err
}

// isImageID reports whether ref looks like an image ID or ID prefix.
func isImageID(ref string) bool {
	ref = strings.TrimPrefix(ref, "sha256:")
	if len(ref) < 3 {
		return false
	}
	for _, c := range ref {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
