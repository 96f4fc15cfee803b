package images

import (
	"context"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
)

// PushOptions say how an image or a manifest list is written to its
// destination.
type PushOptions struct {
	// System reaches the destination (and, for a list, the sources of
	// instances recorded by reference); nil means the defaults.
	System *transport.SystemContext
	// Copy is handed to transport.Copy: Format, Compression and its
	// level, ForceCompression, Retry, Logger. Progress is set from
	// Progress, and All by List.
	Copy transport.CopyOptions
	// Progress shows the copy; nil shows nothing.
	Progress Progress
	// List applies when the name is a manifest list.
	List ListPushOptions
	// Sign signs the manifest written (the list's, for a list).
	Sign SignOptions
}

// ListPushOptions say what pushing a manifest list writes.
type ListPushOptions struct {
	// Instances pushes every image the list names, then the list;
	// without it the list alone goes (its images must be there already).
	Instances bool
	// Remove deletes the list from the store once it is pushed.
	Remove bool
}

func (o PushOptions) system() *transport.SystemContext {
	if o.System == nil {
		return &transport.SystemContext{}
	}
	return o.System
}

// Push writes the stored image name (a name, an ID or an ID prefix) to
// dest and returns the digest of the manifest written. When name is no
// image but a manifest list, it pushes the list (see PushList).
func Push(ctx context.Context, st *store.Store, name string, dest transport.Ref, o PushOptions) (digest.Digest, error) {
	sign, err := o.Sign.signer(dest, o.system())
	if err != nil {
		return "", err
	}
	o.Copy.Sign = sign
	img, err := st.LookupImage(ctx, name)
	if errors.Is(err, store.ErrImageUnknown) {
		if _, lerr := st.ManifestList(ctx, name); lerr == nil {
			return PushList(ctx, st, name, dest, o)
		}
	}
	if err != nil {
		return "", err
	}
	dest = transport.WithDefaultName(dest, matchedName(img, name))
	d, err := copyTo(ctx, dest, o.system(), st.NewImageSource(ctx, img), o.Copy, o.Progress)
	if err != nil {
		return "", fmt.Errorf("pushing %s to %s: %w", name, dest, err)
	}
	if err := pushReferrers(ctx, st, img, d, dest, o.system(), o.Copy); err != nil {
		return "", err
	}
	return d, nil
}

// CopyOptions say how Copy reads its source and writes its destination.
type CopyOptions struct {
	// Source and Destination reach the two sides; nil means the defaults.
	Source, Destination *transport.SystemContext
	// Copy is handed to transport.Copy; Progress is set from Progress.
	Copy     transport.CopyOptions
	Progress Progress
	// Trust is the policy the source must meet; Sign signs the copy.
	Trust Trust
	Sign  SignOptions
}

// Copy copies an image (or a list) between two transport references
// (TRANSPORT:REF) without the store, as `skopeo copy` does, and returns
// the digest of the manifest written.
func Copy(ctx context.Context, from, to string, o CopyOptions) (digest.Digest, error) {
	srcRef, err := transport.ParseReference(from)
	if err != nil {
		return "", err
	}
	dstRef, err := transport.ParseReference(to)
	if err != nil {
		return "", err
	}
	srcSys, dstSys := o.Source, o.Destination
	if srcSys == nil {
		srcSys = &transport.SystemContext{}
	}
	if dstSys == nil {
		dstSys = &transport.SystemContext{}
	}
	if o.Copy.Sign, err = o.Sign.signer(dstRef, dstSys); err != nil {
		return "", err
	}
	src, err := srcRef.NewSource(ctx, srcSys)
	if err != nil {
		return "", fmt.Errorf("copying %s: %w", from, err)
	}
	defer src.Close()
	if _, err := o.Trust.check(ctx, srcRef, src); err != nil {
		return "", fmt.Errorf("copying %s: %w", from, err)
	}
	d, err := copyTo(ctx, dstRef, dstSys, src, o.Copy, o.Progress)
	if err != nil {
		return "", fmt.Errorf("copying %s to %s: %w", from, to, err)
	}
	return d, nil
}

// copyTo opens dest for writing and copies src into it.
func copyTo(ctx context.Context, dest transport.Ref, sys *transport.SystemContext, src transport.Source, o transport.CopyOptions, p Progress) (digest.Digest, error) {
	dst, err := dest.NewDestination(ctx, sys)
	if err != nil {
		return "", fmt.Errorf("opening %s: %w", dest, err)
	}
	defer dst.Close()
	return copyImage(ctx, dst, src, o, p)
}
