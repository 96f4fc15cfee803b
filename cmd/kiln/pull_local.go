package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
)

// pullPolicy is --pull: when an image that may be in the store is pulled.
type pullPolicy int

const (
	// pullMissing pulls only when the store does not have the image.
	pullMissing pullPolicy = iota
	// pullAlways pulls even when the store has the image.
	pullAlways
	// pullNever never pulls: a missing image is an error.
	pullNever
	// pullNewer pulls when the store lacks the image or the source's
	// manifest digest differs from the stored one.
	pullNewer
)

// parsePullPolicy parses Buildah's --pull values, old spellings included.
func parsePullPolicy(s string) (pullPolicy, error) {
	switch strings.ToLower(s) {
	case "missing", "ifmissing", "notpresent", "":
		return pullMissing, nil
	case "always", "true":
		return pullAlways, nil
	case "never", "false":
		return pullNever, nil
	case "newer", "ifnewer":
		return pullNewer, nil
	}
	return 0, usageErrorf("unknown --pull policy %q: use missing, always, never or newer", s)
}

// String returns the policy's name.
func (p pullPolicy) String() string {
	return [...]string{"missing", "always", "never", "newer"}[p]
}

// ensureImage returns the stored image ref names, pulling it first as
// the policy says. An image ID is never pulled. With pullNewer, a
// source that cannot be reached leaves the stored image in use (with a
// warning). Progress goes where ps says.
func ensureImage(ctx context.Context, st *store.Store, ref string, policy pullPolicy, ps pullSettings) (store.Image, error) {
	if _, err := image.ParseReference(ref); err != nil && !isImageID(ref) && !isTransportRef(ref) {
		return store.Image{}, err
	}
	local, err := st.LookupImage(ctx, ref)
	found := err == nil
	if err != nil && !errors.Is(err, store.ErrImageUnknown) {
		return store.Image{}, err
	}
	switch {
	case found && (policy == pullMissing || policy == pullNever || isImageID(ref)):
		return local, nil
	case !found && policy == pullNever:
		return store.Image{}, fmt.Errorf("image %q is not in local storage, and --pull=never forbids pulling it: %w", ref, store.ErrImageUnknown)
	case found && policy == pullNewer:
		same, err := sameAsSource(ctx, local, ref, ps)
		if err != nil {
			logger.Warn("cannot tell whether the image is up to date; using the local one", "image", ref, "error", err)
			return local, nil
		}
		if same {
			return local, nil
		}
	}
	img, err := pullImage(ctx, st, ref, ps)
	if err != nil {
		if !found {
			return store.Image{}, fmt.Errorf("image %q is not in local storage, and pulling it failed: %w", ref, err)
		}
		return store.Image{}, err
	}
	return img, nil
}

// sameAsSource reports whether the source of ref holds the manifest the
// stored image has, for the platform asked for.
func sameAsSource(ctx context.Context, local store.Image, ref string, ps pullSettings) (bool, error) {
	r, err := transport.ParseReference(ref)
	if err != nil {
		return false, err
	}
	sys := ps.systemContext()
	sys.Retry = -1 // an advisory check: an unreachable source means "use the local image", at once
	src, err := r.NewSource(ctx, sys)
	if err != nil {
		return false, err
	}
	defer src.Close()
	d, err := transport.ResolveDigest(ctx, src, ps.Platform)
	if err != nil {
		return false, err
	}
	return d == local.ManifestDigest, nil
}

// isTransportRef reports whether ref names a transport other than a
// registry ("oci:DIR", "docker-archive:FILE", ...).
func isTransportRef(ref string) bool {
	r, err := transport.ParseReference(ref)
	return err == nil && r.Transport() != transport.TransportDocker
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
