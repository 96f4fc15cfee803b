package transport

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ImageName returns the name the image read by src has where it comes
// from, as "host/repo:tag" (or "@digest"), or "" when there is none:
// the registry name of a docker:// source (a short name as resolved),
// NAME:TAG of docker-daemon:, the tag of a docker-archive: (the one in
// the reference, else the archive's first), the NAME of oci:DIR:NAME,
// localhost/DIR of oci:DIR, and
// the ref.name annotation of an oci-archive: image. Names are not
// normalized.
func ImageName(ref Ref, src Source) string {
	if n, ok := src.(interface{ ImageName() string }); ok && n.ImageName() != "" {
		return n.ImageName()
	}
	switch r := ref.(type) {
	case *dockerRef:
		return dockerName(r.ref)
	case *daemonRef:
		return qualify(r.tag)
	case *dockerArchiveRef:
		if r.tag != "" {
			return qualify(r.tag)
		}
	case *ociRef:
		// As Buildah names what it pulls from a layout: oci:DIR:NAME by
		// NAME, oci-archive: by the ref.name annotation of the image read.
		// oci:DIR alone by its absolute path under localhost, as
		// Buildah 1.28 names it ("localhost/DIR:latest"; none when the
		// path is not a valid name).
		if !r.archive {
			if r.ref == "" {
				abs, err := filepath.Abs(r.path)
				if err != nil {
					return ""
				}
				return qualify("localhost/" + strings.TrimLeft(abs, "/"))
			}
			return qualify(r.ref)
		}
		if d, ok := src.(interface{ Descriptor() ocispec.Descriptor }); ok {
			return d.Descriptor().Annotations[ocispec.AnnotationRefName]
		}
	}
	if t, ok := src.(interface{ RepoTags() []string }); ok && len(t.RepoTags()) > 0 {
		return qualify(t.RepoTags()[0])
	}
	return ""
}

// qualify gives a Docker name its registry the way Docker does:
// "busybox" is "docker.io/library/busybox:latest". "" stays "".
func qualify(s string) string {
	if s == "" {
		return ""
	}
	r, err := image.ParseReference(s)
	if err != nil {
		return ""
	}
	return r.DockerNormalized().String()
}

// RepositoryName returns "host/repository" of a docker:// reference or of
// a short name (resolved to its first candidate).
func RepositoryName(ref Ref, sys *SystemContext) (string, error) {
	r, err := registryRef(ref, sys)
	if err != nil {
		return "", err
	}
	full := dockerName(r)
	return full[:len(full)-len(r.Identifier())-1], nil
}

// ResolveDigest returns the digest of the manifest src holds for platform
// p (zero: this machine): the manifest's own, or for an index the digest
// of the matching instance. Only the top-level manifest is read.
func ResolveDigest(ctx context.Context, src Source, p Platform) (digest.Digest, error) {
	raw, mt, err := src.Manifest(ctx, nil)
	if err != nil {
		return "", err
	}
	if !image.IsIndex(mt) {
		return digest.FromBytes(raw), nil
	}
	idx, err := parseIndex(raw)
	if err != nil {
		return "", err
	}
	o := CopyOptions{Platform: p}
	desc, err := MatchPlatform(idx, o.platform())
	if err != nil {
		return "", fmt.Errorf("resolving digest: %w", err)
	}
	return desc.Digest, nil
}
