package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store"
)

type rmiOptions struct{ All, Force, Prune bool }

func init() { register(newRmiCommand) }

func newRmiCommand() *cobra.Command {
	var o rmiOptions
	cmd := &cobra.Command{
		Use:   "rmi [options] IMAGE [IMAGE...]",
		Short: "Remove images from local storage",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if len(args) == 0 && !o.All && !o.Prune {
				return fmt.Errorf("rmi needs an image name or ID, or --all")
			}
			st, err := openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			if o.All {
				imgs, err := st.Images(ctx)
				if err != nil {
					return err
				}
				for _, img := range imgs {
					args = append(args, img.ID)
				}
			}
			var errs []error
			for _, ref := range args {
				if err := removeImage(cmd, st, ref, o.Force); err != nil {
					errs = append(errs, err)
				}
			}
			return errors.Join(errs...)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.All, "all", "a", false, "remove all images")
	f.BoolVarP(&o.Force, "force", "f", false, "also remove containers using the image, and every name of it")
	f.BoolVarP(&o.Prune, "prune", "p", false, "accepted for compatibility")
	return cmd
}

// removeImage untags ref when it is one of several names of an image,
// and otherwise removes the image (containers first with force).
func removeImage(cmd *cobra.Command, st *store.Store, ref string, force bool) error {
	ctx := cmd.Context()
	img, err := st.LookupImage(ctx, ref)
	if err != nil {
		return err
	}
	if byName := matchedName(img, ref); byName != "" && len(img.Names) > 1 {
		if err := st.RemoveName(ctx, byName); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "untagged: %s\n", byName)
		return nil
	} else if byName == "" && len(img.Names) > 1 && !force {
		return fmt.Errorf("image %s has several names %v: remove them by name, or use --force", img.ID[:12], img.Names)
	}
	users, err := st.ContainersUsing(ctx, img.ID)
	if err != nil {
		return err
	}
	if len(users) > 0 && !force {
		return fmt.Errorf("image %s is in use by containers %v: remove them first, or use --force", ref, users)
	}
	for _, u := range users {
		c, err := container.Open(ctx, st, u)
		if err != nil {
			return err
		}
		if err := c.Remove(ctx); err != nil {
			return err
		}
	}
	for _, n := range img.Names {
		fmt.Fprintf(cmd.OutOrStdout(), "untagged: %s\n", n)
	}
	if err := st.DeleteImage(ctx, img.ID); err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), img.ID)
	return nil
}

func matchedName(img store.Image, ref string) string {
	cands, err := image.LocalCandidates(ref)
	if err != nil {
		return ""
	}
	for _, c := range cands {
		for _, n := range img.Names {
			if n == c {
				return n
			}
		}
	}
	return ""
}
