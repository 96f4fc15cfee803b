package transport

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/transport/daemon"
	"github.com/kiln-build/kiln/internal/transport/dir"
	"github.com/kiln-build/kiln/internal/transport/dockerarchive"
	"github.com/kiln-build/kiln/internal/transport/ocilayout"
	"github.com/opencontainers/go-digest"
)

// Transport names, as written before the colon of a reference.
const (
	TransportDocker        = "docker"
	TransportDockerDaemon  = "docker-daemon"
	TransportOCI           = "oci"
	TransportOCIArchive    = "oci-archive"
	TransportDockerArchive = "docker-archive"
	TransportDir           = "dir"
)

// ParseReference parses "transport:reference". A string without a known
// transport is an image name for docker:// ("docker:latest" too: the
// docker transport is written "docker://"); a short name ("busybox") is
// resolved through registries.conf when the image is opened.
func ParseReference(s string) (Ref, error) {
	t, rest, ok := strings.Cut(s, ":")
	if !ok {
		t = ""
	}
	if t == TransportDocker && !strings.HasPrefix(rest, "//") {
		// "docker:latest" is the image docker:latest, as Buildah reads it:
		// the transport always has its two slashes.
		t = ""
	}
	switch t {
	case TransportDocker:
		return parseDockerRef(strings.TrimPrefix(rest, "//"))
	case TransportDockerDaemon:
		return parseDaemonRef(rest)
	case TransportOCI, TransportOCIArchive:
		path, ref, _ := strings.Cut(rest, ":")
		if path == "" {
			return nil, fmt.Errorf("parsing %q: missing path", s)
		}
		return &ociRef{archive: t == TransportOCIArchive, path: path, ref: ref}, nil
	case TransportDockerArchive:
		path, tag, _ := strings.Cut(rest, ":")
		if path == "" {
			return nil, fmt.Errorf("parsing %q: missing path", s)
		}
		return &dockerArchiveRef{path: path, tag: tag}, nil
	case TransportDir:
		if rest == "" {
			return nil, fmt.Errorf("parsing %q: missing path", s)
		}
		return &dirRef{path: rest}, nil
	}
	r, err := image.ParseReference(s)
	if err != nil {
		return nil, fmt.Errorf("parsing image name %q: %w", s, err)
	}
	if r.Domain != "" {
		return parseDockerRef(s)
	}
	return &shortRef{name: s}, nil
}

// parseDockerRef parses a qualified name by image's grammar (the one
// kiln has) and makes go-containerregistry's reference of it for the
// registry client.
func parseDockerRef(s string) (*dockerRef, error) {
	ir, err := image.ParseReference(s)
	if err != nil {
		return nil, fmt.Errorf("parsing %q: %w", s, err)
	}
	r, err := name.ParseReference(ir.String(), name.WithDefaultRegistry("docker.io"))
	if err != nil {
		return nil, fmt.Errorf("parsing %q: %w", s, err)
	}
	return &dockerRef{ref: r}, nil
}

func parseDaemonRef(s string) (*daemonRef, error) {
	if d, err := digest.Parse(s); err == nil {
		return &daemonRef{name: d.String()}, nil
	}
	r, err := image.ParseReference(s)
	if err != nil {
		return nil, fmt.Errorf("parsing docker-daemon:%s: %w", s, err)
	}
	if r.Digest != "" {
		return nil, fmt.Errorf("parsing docker-daemon:%s: digest references are not supported, use NAME:TAG or sha256:ID", s)
	}
	if r.Tag == "" {
		s += ":latest"
	}
	return &daemonRef{name: s, tag: s}, nil
}

// dockerRef is docker://HOST/REPO:TAG|@DIGEST.
type dockerRef struct{ ref name.Reference }

func (r *dockerRef) Transport() string { return TransportDocker }
func (r *dockerRef) String() string    { return "docker://" + r.ref.Name() }

// Name returns the fully qualified image name.
func (r *dockerRef) Name() string { return r.ref.Name() }

func (r *dockerRef) NewSource(ctx context.Context, sys *SystemContext) (Source, error) {
	return newRegistrySource(ctx, r.ref, sys)
}

func (r *dockerRef) NewDestination(ctx context.Context, sys *SystemContext) (Destination, error) {
	return newRegistryDestination(ctx, r.ref, sys)
}

// shortRef is an unqualified name resolved through registries.conf.
type shortRef struct{ name string }

func (r *shortRef) Transport() string { return TransportDocker }
func (r *shortRef) String() string    { return r.name }

func (r *shortRef) NewSource(ctx context.Context, sys *SystemContext) (Source, error) {
	cands, err := ResolveShortName(r.name, sys)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, c := range cands {
		ref, err := parseDockerRef(c)
		if err == nil {
			var src Source
			if src, err = ref.NewSource(ctx, sys); err == nil {
				return src, nil
			}
		}
		errs = append(errs, fmt.Errorf("%s: %w", c, err))
	}
	return nil, fmt.Errorf("pulling %s: no candidate worked: %w", r.name, joinErrs(errs))
}

func (r *shortRef) NewDestination(ctx context.Context, sys *SystemContext) (Destination, error) {
	cands, err := ResolveShortName(r.name, sys)
	if err != nil {
		return nil, err
	}
	if len(cands) != 1 {
		return nil, fmt.Errorf("pushing %s: %w: it could mean any of %v", r.name, ErrShortName, cands)
	}
	ref, err := parseDockerRef(cands[0])
	if err != nil {
		return nil, err
	}
	return ref.NewDestination(ctx, sys)
}

// daemonRef is docker-daemon:NAME:TAG or docker-daemon:sha256:ID.
type daemonRef struct{ name, tag string }

func (r *daemonRef) Transport() string { return TransportDockerDaemon }
func (r *daemonRef) String() string    { return "docker-daemon:" + r.name }

func (r *daemonRef) NewSource(ctx context.Context, sys *SystemContext) (Source, error) {
	c, err := daemon.NewClient(daemonHost(sys))
	if err != nil {
		return nil, err
	}
	return daemon.NewSource(ctx, c, r.name, r.tag, sys.tempDir())
}

func (r *daemonRef) NewDestination(ctx context.Context, sys *SystemContext) (Destination, error) {
	if r.tag == "" {
		return nil, fmt.Errorf("writing %s: a NAME:TAG is required", r)
	}
	c, err := daemon.NewClient(daemonHost(sys))
	if err != nil {
		return nil, err
	}
	return daemon.NewDestination(ctx, c, r.tag, sys.tempDir())
}

func daemonHost(sys *SystemContext) string {
	if sys == nil {
		return ""
	}
	return sys.DaemonHost
}

// ociRef is oci:DIR[:REF] or oci-archive:FILE[:REF].
type ociRef struct {
	archive   bool
	path, ref string
}

func (r *ociRef) Transport() string {
	if r.archive {
		return TransportOCIArchive
	}
	return TransportOCI
}

func (r *ociRef) String() string {
	s := r.Transport() + ":" + r.path
	if r.ref != "" {
		s += ":" + r.ref
	}
	return s
}

func (r *ociRef) NewSource(_ context.Context, sys *SystemContext) (Source, error) {
	if r.archive {
		return ocilayout.NewArchiveSource(r.path, r.ref, sys.tempDir())
	}
	return ocilayout.NewSource(r.path, r.ref)
}

func (r *ociRef) NewDestination(_ context.Context, sys *SystemContext) (Destination, error) {
	if r.archive {
		return ocilayout.NewArchiveDestination(r.path, r.ref, sys.tempDir())
	}
	return ocilayout.NewDestination(r.path, r.ref)
}

// dockerArchiveRef is docker-archive:FILE[:NAME:TAG].
type dockerArchiveRef struct{ path, tag string }

func (r *dockerArchiveRef) Transport() string { return TransportDockerArchive }

func (r *dockerArchiveRef) String() string {
	if r.tag == "" {
		return "docker-archive:" + r.path
	}
	return "docker-archive:" + r.path + ":" + r.tag
}

func (r *dockerArchiveRef) NewSource(context.Context, *SystemContext) (Source, error) {
	return dockerarchive.NewSource(r.path, r.tag)
}

func (r *dockerArchiveRef) NewDestination(_ context.Context, sys *SystemContext) (Destination, error) {
	var tags []string
	if r.tag != "" {
		tags = []string{r.tag}
	}
	return dockerarchive.NewDestination(r.path, tags, sys.tempDir())
}

// WithDefaultName returns ref with name as the name the destination
// records for the image when ref gives none and the transport records
// one: a docker-archive: without NAME:TAG lists name in its RepoTags, as
// Buildah's push of a named image does. Other references are returned as
// they are.
func WithDefaultName(ref Ref, name string) Ref {
	if r, ok := ref.(*dockerArchiveRef); ok && r.tag == "" && name != "" {
		return &dockerArchiveRef{path: r.path, tag: name}
	}
	return ref
}

// dirRef is dir:DIR.
type dirRef struct{ path string }

func (r *dirRef) Transport() string { return TransportDir }
func (r *dirRef) String() string    { return "dir:" + r.path }

func (r *dirRef) NewSource(context.Context, *SystemContext) (Source, error) {
	return dir.NewSource(r.path)
}

func (r *dirRef) NewDestination(context.Context, *SystemContext) (Destination, error) {
	return dir.NewDestination(r.path)
}
