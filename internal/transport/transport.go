// Package transport moves images between kiln and the outside world: a
// registry (docker://), the Docker daemon (docker-daemon:), OCI layouts and
// their archives (oci:, oci-archive:), docker save archives
// (docker-archive:) and plain directories (dir:). Each transport is a
// Source and/or a Destination; Copy moves an image from one to the other,
// verifying every blob and manifest against its digest on the way.
//
// The library never prints, exits or reads flags: callers pass a
// SystemContext and receive progress through callbacks.
package transport

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/kiln-build/kiln/internal/digestio"
	"github.com/kiln-build/kiln/internal/transport/registry"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Source is an image (or index) that can be read. Implementations must be
// safe for concurrent Blob calls.
type Source interface {
	// Manifest returns the raw manifest (or index) bytes and media type. For
	// a non-nil instance digest, the manifest of that instance of an index.
	Manifest(ctx context.Context, instance *digest.Digest) ([]byte, string, error)
	// Blob opens a blob (config or layer) by digest; size -1 if unknown.
	Blob(ctx context.Context, d digest.Digest) (io.ReadCloser, int64, error)
	// Close releases the source.
	Close() error
}

// Destination is where an image is written. PutBlob may be called
// concurrently; PutManifest and Commit are called once the blobs are in.
type Destination interface {
	// HasBlob reports whether the destination already has the blob (and
	// may mount it cross-repo).
	HasBlob(ctx context.Context, desc ocispec.Descriptor) (bool, error)
	// PutBlob stores a blob; the implementation verifies r against
	// desc.Digest/Size and refuses a mismatch.
	PutBlob(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error
	// PutManifest stores a manifest or index; instance is non-nil for a
	// child of an index.
	PutManifest(ctx context.Context, raw []byte, mediaType string, instance *digest.Digest) error
	// Commit makes the image visible (tag written, archive closed, etc.).
	// Close without Commit discards.
	Commit(ctx context.Context) error
	// Close releases the destination.
	Close() error
	// SupportedManifestTypes lists the media types the destination accepts,
	// preferred first; nil means any.
	SupportedManifestTypes() []string
}

// LayerCompressor is implemented by sources that keep compressed forms of
// their layers (the local store): CompressLayer returns the digest and
// size of the layer desc names compressed with compression ("gzip" or
// "zstd") at level (0 for the default), making and keeping it when
// needed; Blob then serves that digest. A layer compressed once is sent
// as the same bytes every time after.
// A layer that arrived uncompressed is sent as it is unless force is set
// (the digest returned is then desc's own); with force, a layer
// compressed otherwise is compressed again.
type LayerCompressor interface {
	CompressLayer(ctx context.Context, desc ocispec.Descriptor, compression string, level int, force bool) (digest.Digest, int64, error)
}

// SpaceChecker is implemented by destinations that refuse an image up
// front when it cannot fit (the local store): Copy calls CheckSpace with
// the config and layers of each image before copying any of its blobs.
type SpaceChecker interface {
	CheckSpace(ctx context.Context, blobs []ocispec.Descriptor) error
}

// BlobLocator is implemented by the ends that live in a registry
// repository: a destination on the same registry can mount blobs from a
// source there, and an end that remembers where its blobs are
// (BlobRepositoryRecorder) learns this repository holds them.
type BlobLocator interface {
	// BlobRepository returns "registry/repository" of the source or
	// destination.
	BlobRepository() string
}

// BlobRepositories is implemented by sources that know registry
// repositories holding their blobs (the store remembers where it pulled
// them from and pushed them to), so that a push to one of those
// registries mounts them instead of uploading them again.
type BlobRepositories interface {
	BlobRepositories(ctx context.Context) []string
}

// BlobRepositoryRecorder is implemented by the ends that remember where
// their blobs are: after a copy to or from a registry, Copy tells them
// which repository holds the blobs it copied.
type BlobRepositoryRecorder interface {
	RecordBlobRepository(ctx context.Context, repository string, blobs []digest.Digest)
}

// CrossRepoMounter is implemented by registry destinations: HasBlob also
// tries to mount a missing blob from the repositories added here.
type CrossRepoMounter interface {
	// AddMountSource adds a "registry/repository" to mount blobs from.
	AddMountSource(repository string)
}

// Ref is a parsed "transport:reference".
type Ref interface {
	// Transport returns the transport name ("docker", "oci", …).
	Transport() string
	// String returns the reference in "transport:reference" form.
	String() string
	// NewSource opens the image for reading.
	NewSource(ctx context.Context, sys *SystemContext) (Source, error)
	// NewDestination opens the image for writing.
	NewDestination(ctx context.Context, sys *SystemContext) (Destination, error)
}

// Platform selects one image of an index.
type Platform struct {
	OS, Architecture, Variant string
}

// ProgressEvent reports the state of one blob during Copy.
type ProgressEvent struct {
	Digest digest.Digest
	// Size is the blob size, -1 if unknown.
	Size int64
	// Done is the number of bytes transferred so far.
	Done int64
	// State is what happened.
	State ProgressState
	// Config is true for an image config blob, false for a layer.
	Config bool
}

// ProgressState is the kind of a ProgressEvent.
type ProgressState int

const (
	// ProgressStarted is sent once before a blob is transferred.
	ProgressStarted ProgressState = iota
	// ProgressRunning is sent as bytes move.
	ProgressRunning
	// ProgressSkipped is sent when the destination already has the blob.
	ProgressSkipped
	// ProgressDone is sent when the blob is stored.
	ProgressDone
)

// String names the state.
func (s ProgressState) String() string {
	return [...]string{"started", "running", "skipped", "done"}[s]
}

// SystemContext carries the settings of one invocation: where credentials,
// certificates and registries.conf are, and how to retry. The zero value
// uses the system defaults. It is read, never modified, by the library.
type SystemContext struct {
	// AuthFile overrides the credential file search (like --authfile).
	AuthFile string
	// Creds are "user:pass" (or "user") credentials that win over any file.
	Creds string
	// CertDir replaces the certs.d lookup for registries (like --cert-dir).
	CertDir string
	// TLSVerify forces TLS verification on or off; nil follows
	// registries.conf (insecure = true turns it off).
	TLSVerify *bool
	// DaemonHost is the Docker Engine address (unix:///path or tcp://h:p).
	// The caller resolves DOCKER_HOST into it; empty means the default socket.
	DaemonHost string
	// RegistriesConf, RegistriesConfDir and ShortNameAliasConf override the
	// registries.conf locations.
	RegistriesConf, RegistriesConfDir, ShortNameAliasConf string
	// RegistriesDir overrides registries.d, where signature storage is
	// configured (--registries.d).
	RegistriesDir string
	// CertsDirs overrides the certs.d directories searched (default
	// /etc/containers/certs.d, /etc/docker/certs.d).
	CertsDirs []string
	// Platform selects the image of an index; zero means this machine.
	Platform Platform
	// Retry is how many times a failed request is retried; RetryDelay the
	// first delay (doubled each time). Zero Retry means 3, negative none.
	Retry      int
	RetryDelay time.Duration
	// TempDir holds temporary files (unpacked archives, staged blobs); ""
	// means the system default.
	TempDir string
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
	// Env replaces the process environment for credential lookups
	// (REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR, HOME); nil means os.Getenv.
	Env func(string) string
	// Sources are the registries an image may come from or go to, as
	// Buildah's BUILD_REGISTRY_SOURCES gives them (the caller reads the
	// variable; see ParseRegistrySources).
	Sources RegistrySources
	// Rootless says kiln runs for an unprivileged user: the default
	// lookaside store is then ~/.local/share/containers/sigstore, as
	// containers/image has it, not root's /var/lib/containers/sigstore.
	Rootless bool
}

// Sentinel errors; match them with errors.Is.
var (
	// ErrDigestMismatch reports content that does not hash to its digest.
	ErrDigestMismatch = digestio.ErrDigestMismatch
	// ErrSizeMismatch reports content whose length differs from its descriptor.
	ErrSizeMismatch = digestio.ErrSizeMismatch
	// ErrTooLarge reports a manifest or config beyond 4 MiB.
	ErrTooLarge = digestio.ErrTooLarge
	// ErrUnsupported reports an operation a transport cannot do.
	ErrUnsupported = errors.New("not supported by this transport")
	// ErrNoMatchingPlatform reports an index without the requested platform.
	// Its words start as containers/image's do, which scripts match.
	ErrNoMatchingPlatform = errors.New("no image found in manifest list for the platform")
	// ErrBlocked reports a registry blocked in registries.conf.
	ErrBlocked = errors.New("blocked in registries.conf")
	// ErrShortName reports a short name that cannot be resolved.
	ErrShortName = errors.New("short name cannot be resolved")
	// ErrNotLoggedIn reports a registry without stored credentials.
	ErrNotLoggedIn = errors.New("not logged in")
	// ErrNotFound reports a manifest, blob or repository a registry does
	// not have (an HTTP 404 answer).
	ErrNotFound = registry.ErrNotFound
)

func (sys *SystemContext) logger() *slog.Logger {
	if sys == nil || sys.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return sys.Logger
}

func (sys *SystemContext) tempDir() string {
	if sys == nil {
		return ""
	}
	return sys.TempDir
}

func (sys *SystemContext) retry() (int, time.Duration) {
	n, d := 3, time.Second
	if sys != nil && sys.Retry > 0 {
		n = sys.Retry
	} else if sys != nil && sys.Retry < 0 {
		n = 0
	}
	if sys != nil && sys.RetryDelay > 0 {
		d = sys.RetryDelay
	}
	return n, d
}
