package dockerfile

import (
	"context"
	"io"
	"log/slog"
	"time"

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
	// Ignore holds the ignore file's patterns (.dockerignore syntax).
	Ignore []string
	// Tags are full image names for the result.
	Tags []string
	// Args are the --build-arg values.
	Args map[string]string
	// Target names the stage to build; "" means the last one.
	Target string
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
	// FROM, COPY --from or RUN --mount from= names; nil means local only.
	Resolve func(ctx context.Context, ref string) (store.Image, error)
	// Remote, when set, shares the cache through a registry
	// (--cache-from, --cache-to).
	Remote RemoteCache
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
