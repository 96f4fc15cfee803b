package dockerfile

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/testbase"
	"github.com/kiln-build/kiln/internal/testenv"
	"github.com/kiln-build/kiln/internal/transport"
)

func TestPlatformKey(t *testing.T) {
	host := "linux/" + runtime.GOARCH
	tests := []struct {
		in   ocispec.Platform
		want string
	}{
		{ocispec.Platform{}, host},
		{ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}, host},
		{ocispec.Platform{OS: "linux", Architecture: "arm64"}, "linux/arm64"},
		{ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, "linux/arm64"},
		{ocispec.Platform{OS: "linux", Architecture: "aarch64"}, "linux/arm64"},
		{ocispec.Platform{OS: "linux", Architecture: "arm"}, "linux/arm/v7"},
		{ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, "linux/arm/v6"},
	}
	for _, tt := range tests {
		if got := platformKey(tt.in); got != tt.want {
			t.Errorf("platformKey(%+v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestGlobalPlatformArgs: a global ARG naming an automatic platform arg
// keeps its value, with or without a default, as current BuildKit does
// (Buildah 1.28 needs the line to use TARGETARCH in FROM); --build-arg
// sets it.
func TestGlobalPlatformArgs(t *testing.T) {
	tests := []struct {
		name, df string
		args     map[string]string
		want     string
	}{
		{"automatic", "FROM scratch\n", nil, "arm64"},
		{"declared", "ARG TARGETARCH\nFROM scratch\n", nil, "arm64"},
		{"default", "ARG TARGETARCH=riscv64\nFROM scratch\n", nil, "arm64"},
		{"build arg", "ARG TARGETARCH\nFROM scratch\n", map[string]string{"TARGETARCH": "s390x"}, "s390x"},
	}
	for _, tt := range tests {
		df, err := parseDockerfile("Dockerfile", []byte(tt.df))
		must(t, err)
		g, err := globalArgs(df, arm64, tt.args, &usage{})
		must(t, err)
		if got := g.values["TARGETARCH"]; got != tt.want {
			t.Errorf("%s: TARGETARCH = %q, want %q", tt.name, got, tt.want)
		}
	}
}

var (
	amd64 = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = ocispec.Platform{OS: "linux", Architecture: "arm64"}
)

func forPlatform(p ocispec.Platform) func(*Options) {
	return func(o *Options) { o.Platform = p }
}

// TestCacheKeyedByPlatform: the same steps from the same parent (scratch)
// built for amd64 and arm64 never hit each other's entries, and each image
// records its platform; a rebuild for either hits its own, "arm64/v8" is
// "arm64", and a build for this machine's platform without --platform
// shares the entries of one that names it.
func TestCacheKeyedByPlatform(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the platforms are written for an amd64 host")
	}
	st := testStore(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.txt": "a\n"})
	const df = "FROM scratch\nCOPY a.txt /a.txt\nLABEL l=1\n"
	build := func(p ocispec.Platform) (store.Image, int) {
		t.Helper()
		img, out, err := buildIn(t, st, dir, df, forPlatform(p))
		if err != nil {
			t.Fatalf("build for %+v: %v\n%s", p, err, out)
		}
		return img, strings.Count(out, "Using cache")
	}
	first, hits := build(amd64)
	if hits != 0 {
		t.Fatalf("first amd64 build hit the cache %d times", hits)
	}
	other, hits := build(arm64)
	if hits != 0 || other.ID == first.ID {
		t.Fatalf("arm64 build after amd64: %d hits (want 0), same image %v", hits, other.ID == first.ID)
	}
	if got := configOf(t, st, other).Architecture; got != "arm64" {
		t.Errorf("arm64 image records architecture %q", got)
	}
	if got := configOf(t, st, first).Architecture; got != "amd64" {
		t.Errorf("amd64 image records architecture %q", got)
	}
	for _, tt := range []struct {
		name string
		p    ocispec.Platform
		want string
	}{
		{"arm64 again", arm64, other.ID},
		{"arm64/v8", ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, other.ID},
		{"amd64 again", amd64, first.ID},
	} {
		img, hits := build(tt.p)
		if hits != 2 || img.ID != tt.want {
			t.Errorf("%s: %d hits (want 2), image %s, want %s", tt.name, hits, img.ID, tt.want)
		}
	}
	// Without --platform: this machine's platform, whose entries are amd64's
	// (the final image is the same, though Buildah records no platform
	// label it was not asked for).
	_, hits = build(ocispec.Platform{})
	if hits != 2 {
		t.Errorf("build without --platform on amd64: %d hits, want the amd64 entries (2)", hits)
	}
}

// addArchBase copies the busybox of arch that umoci packed (Debian's
// busybox-static for that architecture) into st as localhost/busybox-ARCH.
func addArchBase(t *testing.T, st *store.Store, arch string) {
	t.Helper()
	ctx := context.Background()
	layout := testbase.MultiArchLayout(t, "amd64", "arm64")
	ref, err := transport.ParseReference("oci:" + layout + ":busybox-" + arch)
	must(t, err)
	src, err := ref.NewSource(ctx, nil)
	must(t, err)
	defer src.Close()
	dst := st.NewImageDestination([]string{"localhost/busybox-" + arch + ":latest"})
	defer dst.Close()
	if _, err := transport.Copy(ctx, dst, src, transport.CopyOptions{}); err != nil {
		t.Fatalf("copying the %s busybox: %v", arch, err)
	}
}

// crossDockerfile cross-compiles in a stage that runs on the build
// platform and copies the result into a target stage whose RUN runs
// binaries of the target's architecture.
const crossDockerfile = `FROM --platform=$BUILDPLATFORM localhost/busybox AS build
RUN echo shared > /shared
ARG TARGETARCH
RUN echo "built on $(uname -m) for $TARGETARCH" > /out

FROM localhost/busybox-$TARGETARCH
COPY --from=build /out /out
RUN uname -m > /uname
`

// TestCrossStage: FROM --platform=$BUILDPLATFORM runs natively for every
// target and shares its steps that do not read TARGETARCH; the target
// stage's RUN runs arm64 busybox through the emulator; each image holds
// what its own platform made.
func TestCrossStage(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the platforms are written for an amd64 host")
	}
	testenv.NeedEmulator(t, "aarch64")
	st := testStore(t)
	addArchBase(t, st, "amd64")
	addArchBase(t, st, "arm64")
	dir := t.TempDir()
	tests := []struct {
		p          ocispec.Platform
		wantOut    string
		wantUname  string
		wantShared int // cache hits of the build stage's first RUN
	}{
		{amd64, "built on x86_64 for amd64\n", "x86_64\n", 0},
		{arm64, "built on x86_64 for arm64\n", "aarch64\n", 1},
	}
	for _, tt := range tests {
		img, out, err := buildIn(t, st, dir, crossDockerfile, forPlatform(tt.p))
		if err != nil {
			t.Fatalf("build for %s: %v\n%s", tt.p.Architecture, err, out)
		}
		if got := strings.Count(out, "Using cache"); got != tt.wantShared {
			t.Errorf("build for %s: %d cache hits, want %d\n%s", tt.p.Architecture, got, tt.wantShared, out)
		}
		root := rootOf(t, st, img)
		for file, want := range map[string]string{"out": tt.wantOut, "uname": tt.wantUname} {
			got, err := os.ReadFile(filepath.Join(root, file))
			if err != nil || string(got) != want {
				t.Errorf("build for %s: /%s = %q (%v), want %q", tt.p.Architecture, file, got, err, want)
			}
		}
		if got := configOf(t, st, img).Architecture; got != tt.p.Architecture {
			t.Errorf("build for %s: image records architecture %q", tt.p.Architecture, got)
		}
	}
}
