package images

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
)

// PullPolicy is Buildah's --pull: when an image that may be in the store
// is pulled.
type PullPolicy int

const (
	// PullMissing pulls only when the store does not have the image.
	PullMissing PullPolicy = iota
	// PullAlways pulls even when the store has the image.
	PullAlways
	// PullNever never pulls: a missing image is an error.
	PullNever
	// PullNewer pulls when the store lacks the image or the source's
	// manifest digest differs from the stored one.
	PullNewer
)

// ParsePullPolicy parses Buildah's --pull values, old spellings included
// ("ifmissing", "true", "false", ...); "" is PullMissing. "false" is
// PullMissing too, as Buildah 1.28 and Docker read --pull=false (don't
// force a pull; pull what is missing), though buildah-build(1) says it
// never pulls: `from --pull=false IMAGE` and `build --pull=false` with
// IMAGE absent pull it.
func ParsePullPolicy(s string) (PullPolicy, error) {
	switch strings.ToLower(s) {
	case "missing", "ifmissing", "notpresent", "", "false":
		return PullMissing, nil
	case "always", "true":
		return PullAlways, nil
	case "never":
		return PullNever, nil
	case "newer", "ifnewer":
		return PullNewer, nil
	}
	return 0, fmt.Errorf("unsupported pull policy %q: use missing, always, never or newer", s)
}

// String returns the policy's name.
func (p PullPolicy) String() string {
	switch p {
	case PullMissing:
		return "missing"
	case PullAlways:
		return "always"
	case PullNever:
		return "never"
	case PullNewer:
		return "newer"
	}
	return fmt.Sprintf("PullPolicy(%d)", int(p))
}

// EnsureOptions say when and how Ensure pulls.
type EnsureOptions struct {
	Policy PullPolicy
	Pull   PullOptions
	// Logger receives the warning that a newer image could not be looked
	// for; nil discards it.
	Logger *slog.Logger
}

// Ensure returns the stored image ref names, pulling it first as the
// policy says. An image ID is never pulled. With PullNewer, a source that
// cannot be reached leaves the stored image in use (with a warning).
func Ensure(ctx context.Context, st *store.Store, ref string, o EnsureOptions) (store.Image, error) {
	if _, err := image.ParseReference(ref); err != nil && !IsImageID(ref) && !IsTransportRef(ref) {
		return store.Image{}, err
	}
	local, err := st.LookupImage(ctx, ref)
	found := err == nil
	if err != nil && !errors.Is(err, store.ErrImageUnknown) {
		return store.Image{}, err
	}
	if found && !IsImageID(ref) && !platformMatches(st, local, o.Pull.Copy.Platform) {
		// The stored image is for another platform than the one asked
		// for: it is not the image ref names here.
		found = false
	}
	switch {
	case found && (o.Policy == PullMissing || o.Policy == PullNever || IsImageID(ref)):
		return local, nil
	case !found && (o.Policy == PullNever || isDigestID(ref)):
		// Buildah's words: "busybox: image not known". An image ID is
		// never looked for in a registry.
		return store.Image{}, fmt.Errorf("%s: %w", ref, store.ErrImageUnknown)
	case found && o.Policy == PullNewer:
		same, err := sameAsSource(ctx, local, ref, o.Pull)
		if err != nil {
			// Buildah says nothing here (a script reads the container
			// name from the output of `from --pull=true LOCALNAME`).
			if o.Logger != nil {
				o.Logger.Debug("cannot tell whether the image is up to date; using the local one", "image", ref, "error", err)
			}
			return local, nil
		}
		if same {
			return local, nil
		}
	}
	img, err := Pull(ctx, st, ref, o.Pull)
	if err != nil {
		if !found {
			return store.Image{}, fmt.Errorf("image %q is not in local storage, and pulling it failed: %w", ref, err)
		}
		return store.Image{}, err
	}
	return img, nil
}

// platformMatches reports whether the stored image is for platform p;
// empty fields of p match anything.
func platformMatches(st *store.Store, img store.Image, p transport.Platform) bool {
	if p.OS == "" && p.Architecture == "" && p.Variant == "" {
		return true
	}
	have, err := ImagePlatform(st, img)
	if err != nil {
		return true // unreadable here; the build will say why
	}
	return (p.OS == "" || p.OS == have.OS) && (p.Architecture == "" || p.Architecture == have.Architecture) &&
		(p.Variant == "" || p.Variant == have.Variant)
}

// sameAsSource reports whether the source of ref holds the manifest the
// stored image has, for the platform asked for. It is advisory: it does
// not retry.
func sameAsSource(ctx context.Context, local store.Image, ref string, o PullOptions) (bool, error) {
	r, err := transport.ParseReference(ref)
	if err != nil {
		return false, err
	}
	sys := *o.system()
	sys.Platform = o.Copy.Platform
	sys.Retry = -1 // an unreachable source means "use the local image", at once
	src, err := r.NewSource(ctx, &sys)
	if err != nil {
		return false, err
	}
	defer src.Close()
	d, err := transport.ResolveDigest(ctx, src, o.Copy.Platform)
	if err != nil {
		return false, err
	}
	return d == local.ManifestDigest, nil
}

// IsTransportRef reports whether ref names a transport other than a
// registry ("oci:DIR", "docker-archive:FILE", ...).
func IsTransportRef(ref string) bool {
	r, err := transport.ParseReference(ref)
	return err == nil && r.Transport() != transport.TransportDocker
}

// IsImageID reports whether ref looks like an image ID or an ID prefix
// (three hex digits at least, "sha256:" allowed).
func IsImageID(ref string) bool {
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

// isDigestID reports whether ref can only be an image ID: "sha256:HEX"
// or all 64 hex digits of one.
func isDigestID(ref string) bool {
	return strings.HasPrefix(ref, "sha256:") && IsImageID(ref) || isFullImageID(ref)
}

// isFullImageID reports whether s is a whole image ID (64 hex digits).
func isFullImageID(s string) bool { return len(s) == 64 && IsImageID(s) }
