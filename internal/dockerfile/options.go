package dockerfile

import (
	"context"
	"io"
	"log/slog"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/run"
	"github.com/kiln-build/kiln/internal/store"
)

// Options describe one build. The caller prepares the context as a local
// directory (a tarball, stdin or git repository unpacked first) and reads
// the Dockerfile; Build never prints except to Out.
type Options struct {
	// ContextDir is the build context; it is read in place, never copied.
	ContextDir string
	// Dockerfile is the Dockerfile's content; DockerfileName names it in
	// messages ("Containerfile", "Dockerfile", "-").
	Dockerfile     []byte
	DockerfileName string
	// Ignore holds the ignore file's patterns (.dockerignore syntax);
	// IgnoreFile names the file, for messages.
	Ignore     []string
	IgnoreFile string
	// Tags are full image names for the result.
	Tags []string
	// Args are the --build-arg values.
	Args map[string]string
	// Target names the stage to build; "" means the last one.
	Target string
	// AllStages builds every stage up to the target, needed or not
	// (Buildah's --skip-unused-stages=false); by default only the stages
	// the target reads run.
	AllStages bool
	// From, when set, replaces the base image of the first stage.
	From string
	// Platform is the platform the build is for; empty fields are this
	// machine's. FROM picks the image of a list for it (FROM --platform
	// overrides it per stage), the TARGET* args name it, and when any
	// field is set the final image records it as its platform.
	Platform ocispec.Platform
	// Commit shapes every image the build writes.
	Commit CommitOptions
	// Cache selects how steps are cached.
	Cache CacheOptions
	// Run applies to every RUN step.
	Run RunOptions
	// Contexts are the --build-context values: a local directory or a
	// "docker-image://REF" for each name.
	Contexts map[string]string
	// Jobs bounds how many stages run at once; 0 means one per CPU.
	Jobs int
	// Resolve finds (pulling when the pull policy says so) the image a
	// FROM, COPY --from or RUN --mount from= names, for platform p (the
	// stage's: zero fields are this machine's); nil means local only.
	Resolve func(ctx context.Context, ref string, p ocispec.Platform) (store.Image, error)
	// Remote, when set, shares the cache through a registry
	// (--cache-from, --cache-to).
	Remote RemoteCache
	// StepIDs prints each step's image ID and cache hits ("--> ID",
	// "--> Using cache ID"), as Buildah does with --layers; the final
	// image's "COMMIT NAME" and "--> ID" are always printed.
	StepIDs bool
	// CommitName is the name the final COMMIT line shows (the first tag,
	// as given).
	CommitName string
	// Out receives the step headers and the output of RUN steps; nil
	// discards them.
	Out    io.Writer
	Logger *slog.Logger
}

// CommitOptions shape the images a build writes.
type CommitOptions struct {
	Format image.Format
	// Timestamp, when set, fixes created times in configs, history and
	// layers, for reproducible images.
	Timestamp *time.Time
	// Labels and Annotations (K=V) are added to the final image.
	Labels, Annotations []string
	// Env (K=V, values expanded with the image's variables) is set in the
	// final image's config, then Unsetenv's names are removed from it.
	Env, Unsetenv []string
	// OSVersion and OSFeatures (a name, or "name-" to remove one) are
	// set in the final image's config.
	OSVersion  string
	OSFeatures []string
	// OmitHistory leaves the final image's history empty.
	OmitHistory bool
	// Squash makes the final image a single layer on top of nothing.
	Squash bool
	// KeepOnFailure keeps the failed stage's working container
	// (--force-rm=false); KeepOnSuccess keeps each stage's last working
	// container after a successful build (--rm=false).
	KeepOnFailure, KeepOnSuccess bool
}

// CacheOptions select how steps are cached.
type CacheOptions struct {
	// Layers commits every step as an image and caches it (--layers).
	Layers bool
	// NoCache ignores existing entries; new ones are still recorded.
	NoCache bool
	// TTL, when set, ignores entries older than it (--cache-ttl).
	TTL time.Duration
}

// RunOptions apply to every RUN step.
type RunOptions struct {
	Isolation run.Isolation
	Runtime   string
	Network   run.Network
	// Mounts are the --volume mounts.
	Mounts []specs.Mount
	// Secrets are the --secret values by id.
	Secrets map[string]Secret
	// SSHAuthSock is the agent socket RUN --mount=type=ssh gets ("" none).
	SSHAuthSock string
	CapAdd      []string
	CapDrop     []string
	// Security is the --security-opt policy (seccomp profile, ...).
	Security run.Security
	// Stdin is every RUN's standard input; nil is /dev/null.
	Stdin io.Reader
	// HostProxy are the proxy variables (K=V) of kiln's environment RUN
	// steps get, unless a build arg or ENV sets them (--http-proxy).
	HostProxy []string
	// Settings are the namespaces, resource limits, DNS and hosts, devices
	// and hooks every RUN gets.
	Settings run.Settings
	// Rusage, when set, receives each step's resource usage (that of the
	// processes it ran: none for a step that runs nothing), one line per
	// step (--log-rusage).
	Rusage io.Writer
	// RuntimeLog receives the OCI runtime's own log when --runtime-flag
	// debug asks for it, also when Out is discarded (-q), as Buildah
	// shows it; nil sends it with the RUN's output.
	RuntimeLog io.Writer
}

// Secret is the source of one --secret: a file, or an environment
// variable of the kiln process.
type Secret struct {
	Src string
	Env string
}

// Result is what a build produced.
type Result struct {
	// ImageID is the final image's ID.
	ImageID string
	// Digest is its manifest digest.
	Digest string
}

// RemoteCache shares step results beyond one store, by cache key. Fetch
// is asked on a local miss and returns the step's image, stored locally,
// when the remote has it; Store receives every step's result at the end
// of a successful build.
type RemoteCache interface {
	Fetch(ctx context.Context, key string) (store.Image, bool, error)
	Store(ctx context.Context, key string, img store.Image) error
}
