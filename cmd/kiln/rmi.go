package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/images"
	"github.com/kiln-build/kiln/internal/store"
)

type rmiOptions struct {
	images.RemoveOptions
	// Prune removes the dangling images instead of those named.
	Prune bool
}

func init() { register(newRmiCommand) }

func newRmiCommand() *cobra.Command {
	var o rmiOptions
	cmd := &cobra.Command{
		Use:   "rmi [options] IMAGE [IMAGE...]",
		Short: "Remove images from local storage",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			switch {
			case len(args) == 0 && !o.All && !o.Prune:
				return errors.New("image name or ID must be specified")
			case len(args) > 0 && o.All:
				return errors.New("when using the --all switch, you may not pass any images names or IDs")
			case o.All && o.Prune:
				return errors.New("when using the --all switch, you may not use --prune switch")
			case len(args) > 0 && o.Prune:
				return errors.New("when using the --prune switch, you may not pass any images names or IDs")
			}
			st, err := openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			var removed []images.Removal
			if o.Prune {
				removed, err = images.PruneDangling(ctx, st)
			} else {
				// Manifest lists are listed among images, as Buildah lists
				// them: rmi takes them by name or ID too.
				var lists []images.Removal
				if args, lists, err = removeLists(ctx, st, args, o.All); err != nil {
					return err
				}
				if len(args) > 0 || o.All {
					removed, err = images.Remove(ctx, st, args, o.RemoveOptions)
				}
				removed = append(lists, removed...)
			}
			// Buildah's order: every name taken off, then every image deleted.
			out := cmd.OutOrStdout()
			for _, r := range removed {
				for _, n := range r.Untagged {
					fmt.Fprintf(out, "untagged: %s\n", n)
				}
			}
			for _, r := range removed {
				if r.Deleted != "" {
					fmt.Fprintln(out, r.Deleted)
				}
			}
			if err == nil {
				return nil
			}
			var list errorList
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				list = j.Unwrap()
			} else {
				list = errorList{err}
			}
			return list
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.All, "all", "a", false, "remove all images")
	f.BoolVarP(&o.Force, "force", "f", false, "also remove containers using the image, and every name of it")
	f.BoolVarP(&o.Prune, "prune", "p", false, "remove the dangling images (unnamed, not a build's intermediate step, used by no container)")
	return optionsFirst(cmd)
}

// removeLists removes the manifest lists refs name (by name or by a
// prefix of the ID images shows), or every list with all, and returns
// the refs that name none.
func removeLists(ctx context.Context, st *store.Store, refs []string, all bool) ([]string, []images.Removal, error) {
	lists, err := images.StoredLists(ctx, st)
	if err != nil || len(lists) == 0 {
		return refs, nil, err
	}
	var rest []string
	var doomed []store.ManifestList
	for _, ref := range refs {
		if ml, err := st.ManifestList(ctx, ref); err == nil {
			doomed = append(doomed, ml)
			continue
		}
		n := len(doomed)
		for _, ml := range lists {
			if len(ref) >= 3 && strings.HasPrefix(images.ListID(ml), strings.TrimPrefix(ref, "sha256:")) {
				doomed = append(doomed, ml)
			}
		}
		if len(doomed) == n {
			rest = append(rest, ref)
		}
	}
	if all {
		doomed = lists
	}
	var out []images.Removal
	for _, ml := range doomed {
		if err := st.DeleteManifestList(ctx, ml.Name); err != nil && !errors.Is(err, store.ErrManifestListUnknown) {
			return rest, out, err
		}
		r := images.Removal{Untagged: []string{ml.Name}}
		if tagged, err := images.ListTagged(ctx, st, ml); err == nil && !tagged {
			r.Deleted = images.ListID(ml)
		}
		out = append(out, r)
	}
	return rest, out, nil
}
