package images

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
)

// StorageRef is a containers-storage: reference, as Buildah's commit and
// push take it: "containers-storage:[DRIVER@ROOT+RUNROOT]NAME" names an
// image in the kiln store at ROOT (another store than the one in use),
// "containers-storage:NAME" one in the store in use.
type StorageRef struct {
	// Driver, Root and RunRoot say which store; all empty for the one in
	// use. Driver may be empty when Root is not.
	Driver, Root, RunRoot string
	// Name is the image name as written (NormalizeName makes it whole).
	Name string
}

// Elsewhere reports whether r names a store other than the one in use.
func (r StorageRef) Elsewhere() bool { return r.Root != "" || r.RunRoot != "" || r.Driver != "" }

// ErrBadStorageRef is wrapped by ParseStorageRef's errors.
var ErrBadStorageRef = errors.New("bad containers-storage reference")

// ParseStorageRef parses a containers-storage: reference; ok is false
// when s is not one.
func ParseStorageRef(s string) (r StorageRef, ok bool, err error) {
	rest, ok := strings.CutPrefix(s, "containers-storage:")
	if !ok {
		return r, false, nil
	}
	if spec, ok := strings.CutPrefix(rest, "["); ok {
		spec, name, found := strings.Cut(spec, "]")
		if !found {
			return r, true, fmt.Errorf("%w %q: no ] after the store", ErrBadStorageRef, s)
		}
		r.Name = name
		if d, paths, hasDriver := strings.Cut(spec, "@"); hasDriver {
			r.Driver, spec = d, paths
		}
		r.Root, r.RunRoot, _ = strings.Cut(spec, "+")
		// Driver options may follow the run root (":opt,opt"); kiln's
		// stores keep theirs in storage.conf.
		if i := strings.Index(r.RunRoot, ":"); i >= 0 {
			return r, true, fmt.Errorf("%w %q: driver options in the reference are not supported", ErrBadStorageRef, s)
		}
		if r.Root == "" {
			return r, true, fmt.Errorf("%w %q: no root directory", ErrBadStorageRef, s)
		}
		return r, true, nil
	}
	r.Name = rest
	return r, true, nil
}

// CommitTarget is where Commit writes the image: the store in use (under
// Names, or none), another store, or a transport destination.
type CommitTarget struct {
	// Names are full names for the image in the store in use.
	Names []string
	// Store, when set, is another store to write the image to, under
	// StoreNames.
	Store      *store.Store
	StoreNames []string
	// Ref, when set, is a transport destination (dir:, oci:, docker://...).
	Ref transport.Ref
}

func (t CommitTarget) elsewhere() bool { return t.Store != nil || t.Ref != nil }

// CommitOptions say how Commit makes the image and writes it.
type CommitOptions struct {
	// Container shapes the image; Commit sets its Names.
	Container container.CommitOptions
	// Push writes the image to a target outside the store in use
	// (compression, retries, progress).
	Push PushOptions
}

// Commit makes an image of the working container and writes it to t, as
// Buildah's commit does. An image written to another store or a
// transport is not kept in the store in use (unless it was there already
// under a name). It returns the image (its ID is the config digest,
// wherever it went).
func Commit(ctx context.Context, st *store.Store, c *container.Container, t CommitTarget, o CommitOptions) (img store.Image, err error) {
	co := o.Container
	if !t.elsewhere() {
		co.Names = t.Names
	}
	img, err = c.Commit(ctx, co)
	if err != nil || !t.elsewhere() {
		return img, err
	}
	defer func() {
		if len(img.Names) > 0 {
			return
		}
		if _, rerr := Remove(context.WithoutCancel(ctx), st, []string{img.ID}, RemoveOptions{}); rerr != nil && !errors.Is(rerr, store.ErrImageUnknown) {
			err = errors.Join(err, fmt.Errorf("removing the image kept while it was written: %w", rerr))
		}
	}()
	if t.Ref != nil {
		_, err = Push(ctx, st, img.ID, t.Ref, o.Push)
		return img, err
	}
	if err := PushToStore(ctx, st, img.ID, t.Store, t.StoreNames, o.Push); err != nil {
		return img, err
	}
	return img, nil
}

// PushToStore copies the stored image name to the store dst, under names
// there (full names, see image.NormalizeName).
func PushToStore(ctx context.Context, st *store.Store, name string, dst *store.Store, names []string, o PushOptions) error {
	img, err := st.LookupImage(ctx, name)
	if err != nil {
		return err
	}
	d := dst.NewImageDestination(names)
	defer d.Close()
	copts := o.Copy
	copts.Compression = transport.CompressionKeep // a store keeps layers as they are
	if _, err := copyImage(ctx, d, st.NewImageSource(ctx, img), copts, o.Progress); err != nil {
		return fmt.Errorf("copying %s to another store: %w", name, err)
	}
	return nil
}
