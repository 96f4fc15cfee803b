package images

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store"
)

// RemoveOptions say what Remove may take with an image.
type RemoveOptions struct {
	// All removes every image (the references given are added to them).
	All bool
	// Force removes the containers that use an image first, and an image
	// referred to by ID whatever names it has; a reference to no image is
	// then no error.
	Force bool
}

// Removal is what Remove did for one reference.
type Removal struct {
	// Ref is the reference as given (an ID for each image of All).
	Ref string
	// Untagged are the names taken off: the one ref named when the image
	// keeps others, or every name of an image deleted.
	Untagged []string
	// Deleted is the ID of the image deleted; "" when only a name went.
	Deleted string
}

// Remove removes images as `rmi` does, for each reference in order: a
// name of an image that has other names is taken off it (untagged);
// otherwise the image goes, with all its names. An image with several
// names referred to by ID, or used by containers, is refused unless
// Force, which removes those containers first. Every name and image goes
// in one store transaction, so that a listing sees all of it or none.
//
// It returns what went for each reference, in order, and the errors of
// those that could not go, joined: a reference that fails does not stop
// the others.
func Remove(ctx context.Context, st *store.Store, refs []string, o RemoveOptions) ([]Removal, error) {
	if o.All {
		imgs, err := st.Images(ctx)
		if err != nil {
			return nil, err
		}
		for _, img := range imgs {
			refs = append(refs, img.ID)
		}
	}
	p := removalPlan{untagged: map[string]bool{}, deleted: map[string]bool{}}
	var errs []error
	for _, ref := range refs {
		if err := p.add(ctx, st, ref, o.Force); err != nil {
			errs = append(errs, err)
		}
	}
	if len(p.out) == 0 {
		return nil, errors.Join(errs...)
	}
	if err := st.RemoveImages(ctx, p.removal); err != nil {
		return nil, errors.Join(append(errs, err)...)
	}
	return p.out, errors.Join(errs...)
}

// removalPlan collects what Remove will change, as if each reference were
// removed in turn: a later reference sees the names and images earlier
// ones take.
type removalPlan struct {
	removal  store.ImageRemoval
	out      []Removal
	untagged map[string]bool // names taken off
	deleted  map[string]bool // image IDs deleted
}

func (p *removalPlan) add(ctx context.Context, st *store.Store, ref string, force bool) error {
	img, err := st.LookupImage(ctx, ref)
	if errors.Is(err, store.ErrImageUnknown) && force {
		return nil // forced, as Buildah's rmi -f: nothing to remove is no error
	}
	if errors.Is(err, store.ErrImageUnknown) {
		return fmt.Errorf("%s: %w", ref, store.ErrImageUnknown) // Buildah's words
	}
	if err != nil {
		return err
	}
	byName := matchedName(img, ref)
	if p.deleted[img.ID] || p.untagged[byName] {
		return fmt.Errorf("%s: %w", ref, store.ErrImageUnknown)
	}
	img.Names = slices.DeleteFunc(img.Names, func(n string) bool { return p.untagged[n] })
	if byName != "" && len(img.Names) > 1 {
		p.untagged[byName] = true
		p.removal.Names = append(p.removal.Names, byName)
		p.out = append(p.out, Removal{Ref: ref, Untagged: []string{byName}})
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
	p.deleted[img.ID] = true
	p.removal.IDs = append(p.removal.IDs, img.ID)
	p.out = append(p.out, Removal{Ref: ref, Untagged: img.Names, Deleted: img.ID})
	return nil
}

// matchedName returns the name of img that ref names, "" when ref names
// it otherwise (by ID).
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

// PruneDangling removes the dangling images, as `rmi --prune` does: the
// unnamed images that are not intermediate steps of a cached build (see
// List), that no stored manifest list lists and that no working container
// uses; then again, while removing
// some leaves others dangling (a build step whose last child went).
func PruneDangling(ctx context.Context, st *store.Store) ([]Removal, error) {
	var out []Removal
	gone := map[string]bool{}
	for {
		imgs, err := st.Images(ctx)
		if err != nil {
			return out, err
		}
		inter, err := intermediateSet(ctx, st, imgs)
		if err != nil {
			return out, err
		}
		listed, err := listedImages(ctx, st)
		if err != nil {
			return out, err
		}
		var refs []string
		for _, img := range imgs {
			if len(img.Names) > 0 || inter[img.ID] || listed[img.ID] || gone[img.ID] {
				continue
			}
			users, err := st.ContainersUsing(ctx, img.ID)
			if err != nil {
				return out, err
			}
			if len(users) == 0 {
				refs = append(refs, img.ID)
				gone[img.ID] = true
			}
		}
		if len(refs) == 0 {
			return out, nil
		}
		removed, err := Remove(ctx, st, refs, RemoveOptions{})
		out = append(out, removed...)
		if err != nil {
			return out, err
		}
	}
}
