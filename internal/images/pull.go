package images

import (
	"context"
	"fmt"
	"strings"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
)

// PullOptions say how an image is read from its source.
type PullOptions struct {
	// System reaches the source: registries.conf, credentials, TLS, the
	// Docker daemon's address, request retries. Nil means the defaults.
	System *transport.SystemContext
	// Copy is handed to transport.Copy: Platform picks the image of a
	// list (zero is this machine's), Retry the blob retries, Logger.
	// TempDir defaults to System's; Progress is set from Progress.
	Copy transport.CopyOptions
	// Progress shows the copy; nil shows nothing.
	Progress Progress
	// Trust is the signature policy the image must meet before
	// anything of it is stored.
	Trust Trust
}

func (o PullOptions) system() *transport.SystemContext {
	if o.System == nil {
		return &transport.SystemContext{}
	}
	return o.System
}

// Pull copies ref (a registry name, or TRANSPORT:REF) into the store and
// names it as Buildah would: by the full name it has at its origin
// (registry, docker-daemon:, docker-archive:, oci:DIR:NAME, an
// oci-archive:'s ref.name annotation), normalized; an image from a dir:
// or an unnamed layout has no name and is known by its ID.
func Pull(ctx context.Context, st *store.Store, ref string, o PullOptions) (store.Image, error) {
	ref = localName(ctx, st, ref)
	r, err := transport.ParseReference(ref)
	if err != nil {
		return store.Image{}, err
	}
	sys := o.system()
	copts := o.Copy
	if copts.TempDir == "" {
		copts.TempDir = sys.TempDir
	}
	src, err := r.NewSource(ctx, sys)
	if err != nil {
		return store.Image{}, fmt.Errorf("pulling %s: %w", ref, err)
	}
	defer src.Close()
	if _, err := o.Trust.check(ctx, r, src); err != nil {
		return store.Image{}, fmt.Errorf("pulling %s: %w", ref, err)
	}
	var names []string
	if n, err := image.NormalizeName(transport.ImageName(r, src)); err == nil {
		names = append(names, n)
	}
	dst := st.NewImageDestination(names)
	defer dst.Close()
	if t, ok := o.Progress.(Announcer); ok {
		name := transport.ImageName(r, src)
		if len(names) > 0 {
			name = names[0]
		}
		t.Trying(name)
	}
	if _, err := copyImage(ctx, dst, src, copts, o.Progress); err != nil {
		return store.Image{}, fmt.Errorf("pulling %s: %w", ref, err)
	}
	return dst.Image(), nil
}

// RepositoryTags lists "docker://REPO:TAG" for every tag of the registry
// repository ref names (`pull --all-tags`); ref must not name a tag or
// digest itself.
func RepositoryTags(ctx context.Context, ref string, sys *transport.SystemContext) ([]string, error) {
	r, err := transport.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	if r.Transport() != transport.TransportDocker {
		// Buildah's words, which scripts match.
		return nil, fmt.Errorf("pulling all tags is not supported for %s transport: --all-tags needs a registry repository, not %s", r.Transport(), r)
	}
	if pr, err := image.ParseReference(strings.TrimPrefix(ref, "docker://")); err == nil && (pr.Tag != "" || pr.Digest != "") {
		return nil, fmt.Errorf("--all-tags needs a repository without a tag or digest, not %q", ref)
	}
	repo, err := transport.RepositoryName(r, sys)
	if err != nil {
		return nil, err
	}
	tags, err := transport.Tags(ctx, r, sys)
	if err != nil {
		return nil, fmt.Errorf("listing tags of %s: %w", repo, err)
	}
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		out = append(out, "docker://"+repo+":"+t)
	}
	return out, nil
}

// localName is the stored name a short name (no registry, no transport)
// names, when a stored image has it: Buildah pulls "image" as
// localhost/image:latest when that is stored, without searching the
// registries. Any other ref is returned as it is.
func localName(ctx context.Context, st *store.Store, ref string) string {
	if IsTransportRef(ref) || IsImageID(ref) {
		return ref
	}
	if r, err := image.ParseReference(ref); err != nil || r.Domain != "" {
		return ref
	}
	img, err := st.LookupImage(ctx, ref)
	if err != nil {
		return ref
	}
	if n := matchedName(img, ref); n != "" {
		return n
	}
	return ref
}
