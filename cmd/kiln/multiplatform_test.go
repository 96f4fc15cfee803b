package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testbase"
	"github.com/kiln-build/kiln/internal/testenv"
	"github.com/kiln-build/kiln/internal/transport/transporttest"
)

// multiDockerfile cross-compiles in a stage that runs natively for every
// target (FROM --platform=$BUILDPLATFORM, TARGETARCH) and copies the
// result into the target stage, whose RUN runs the target's busybox
// (through qemu-user-static for arm64).
const multiDockerfile = `FROM --platform=$BUILDPLATFORM BASE AS build
ARG TARGETARCH TARGETPLATFORM BUILDPLATFORM
RUN echo "$BUILDPLATFORM to $TARGETPLATFORM: made on $(uname -m) for $TARGETARCH" > /made

FROM BASE
COPY --from=build /made /made
RUN uname -m > /uname
CMD ["/bin/sh", "-c", "cat /made /uname"]
`

// indexOf is what skopeo inspect --raw shows of a manifest list.
type indexOf struct {
	MediaType string
	Manifests []struct {
		Digest   string
		Platform struct{ OS, Architecture, Variant string }
	}
}

func (ix indexOf) arches() []string {
	var out []string
	for _, m := range ix.Manifests {
		out = append(out, m.Platform.OS+"/"+m.Platform.Architecture)
	}
	slices.Sort(out)
	return out
}

// TestMultiPlatformBuild: a base manifest list of amd64 and arm64
// busybox (Debian's busybox-static of each, packed by umoci, listed and
// pushed by buildah); kiln builds for both platforms at once with a
// native cross-compiling stage and an emulated RUN, adds both images to
// --manifest and pushes the list with manifest push --all; skopeo reads
// the list back, and dockerd runs each instance with docker run
// --platform. A second build with -t hits the cache for every step of
// each platform and names a list; pull, inspect, from --platform and run
// of the foreign image work through the emulator.
func TestMultiPlatformBuild(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the emulated platform is arm64 on an amd64 host")
	}
	requiresRoot(t)
	testenv.NeedEmulator(t, "aarch64")
	host := plainRegistry(t)
	base := testbase.PushMultiArch(t, host, "amd64", "arm64")
	var baseIndex indexOf
	decodeJSON(t, runPeer(t, "skopeo", "inspect", "--raw", "--tls-verify=false", "docker://"+base), &baseIndex)
	if got := baseIndex.arches(); !slices.Equal(got, []string{"linux/amd64", "linux/arm64"}) {
		t.Fatalf("the base list buildah pushed has %v", got)
	}

	e := newEnv(t, "")
	ctxDir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(strings.ReplaceAll(multiDockerfile, "BASE", base)), 0o644))
	out, errOut, code := e.kiln("build", "--tls-verify=false", "--layers", "--platform", "linux/amd64,linux/arm64", "--manifest", "localhost/multi:1", ctxDir)
	if code != 0 {
		t.Fatalf("kiln build: exit %d\n%s\n%s", code, out, errOut)
	}
	lines := strings.Split(out, "\n")
	listID := lines[len(lines)-1]
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		if !strings.Contains(out, "["+p+"] STEP 1/3: FROM --platform=$BUILDPLATFORM") && !strings.Contains(out, "["+p+"] [1/2] STEP 1/3") {
			t.Errorf("no step line prefixed with [%s]:\n%s", p, out)
		}
	}
	for _, l := range lines[:len(lines)-1] {
		if !strings.HasPrefix(l, "[linux/") {
			t.Errorf("a line of a two-platform build without its platform: %q", l)
		}
	}
	var listed indexOf
	decodeJSON(t, e.mustKiln("manifest", "inspect", "localhost/multi:1"), &listed)
	if got := listed.arches(); !slices.Equal(got, []string{"linux/amd64", "linux/arm64"}) {
		t.Fatalf("--manifest list has %v", got)
	}
	if len(listID) != 64 || strings.Trim(listID, "0123456789abcdef") != "" {
		t.Errorf("build printed %q last, want the list's ID", listID)
	}

	// Pushed with every instance; read back by skopeo; run by dockerd.
	dest := host + "/out/multi:1"
	e.mustKiln("manifest", "push", "-q", "--all", "--tls-verify=false", "localhost/multi:1", "docker://"+dest)
	var pushed indexOf
	decodeJSON(t, runPeer(t, "skopeo", "inspect", "--raw", "--tls-verify=false", "docker://"+dest), &pushed)
	if got := pushed.arches(); !slices.Equal(got, []string{"linux/amd64", "linux/arm64"}) {
		t.Fatalf("skopeo reads a pushed list of %v", got)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		var cfg struct{ Architecture, OS string }
		decodeJSON(t, runPeer(t, "skopeo", "inspect", "--config", "--raw", "--tls-verify=false", "--override-arch", arch, "docker://"+dest), &cfg)
		if cfg.Architecture != arch || cfg.OS != "linux" {
			t.Errorf("the %s instance's config says %s/%s", arch, cfg.OS, cfg.Architecture)
		}
	}
	d := transporttest.StartDockerd(t)
	want := map[string]string{
		"amd64": "linux/amd64 to linux/amd64: made on x86_64 for amd64\nx86_64",
		"arm64": "linux/amd64 to linux/arm64: made on x86_64 for arm64\naarch64",
	}
	for arch, w := range want {
		// The pull's progress comes first; the last two lines are the run's.
		runOut := strings.Split(strings.TrimSpace(d.Docker(t, "run", "--rm", "--network", "none", "--platform", "linux/"+arch, dest)), "\n")
		got := strings.Join(runOut[max(0, len(runOut)-2):], "\n")
		if got != w {
			t.Errorf("docker run --platform linux/%s printed %q, want %q", arch, got, w)
		}
	}

	// Again with -t: every step of both platforms is a cache hit, and the
	// tag names a list of the same two images.
	outDir := t.TempDir()
	out, errOut, code = e.kiln("build", "--tls-verify=false", "--layers", "--platform", "linux/amd64,linux/arm64", "-t", "localhost/tagged", "--output", "type=local,dest="+outDir, ctxDir)
	if code != 0 {
		t.Fatalf("kiln build -t: exit %d\n%s\n%s", code, out, errOut)
	}
	// --output: a directory per platform, as BuildKit writes them.
	for arch, uname := range map[string]string{"amd64": "x86_64\n", "arm64": "aarch64\n"} {
		if got := readFile(t, filepath.Join(outDir, "linux_"+arch, "uname")); got != uname {
			t.Errorf("--output linux_%s/uname = %q, want %q", arch, got, uname)
		}
	}
	if errOut := e.fails("build", "--platform", "linux/amd64,linux/arm64", "--output", "type=tar,dest="+filepath.Join(outDir, "x.tar"), ctxDir); !strings.Contains(errOut, "a tar of several platforms") {
		t.Errorf("--output type=tar with two platforms: %q", errOut)
	}
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		if n := strings.Count(out, "["+p+"] --> Using cache"); n != 4 {
			t.Errorf("rebuild for %s: %d cache hits, want 4:\n%s", p, n, out)
		}
	}
	var tagged indexOf
	decodeJSON(t, e.mustKiln("manifest", "inspect", "localhost/tagged"), &tagged)
	if got, want := tagged.arches(), listed.arches(); !slices.Equal(got, want) || tagged.Manifests[0].Digest != listed.Manifests[0].Digest {
		t.Errorf("-t list: %+v, want the --manifest list's images %+v", tagged, listed)
	}
	e.mustKiln("push", "-q", "--tls-verify=false", "localhost/tagged", "docker://"+host+"/out/tagged:1")
	var pushedTagged indexOf
	decodeJSON(t, runPeer(t, "skopeo", "inspect", "--raw", "--tls-verify=false", "docker://"+host+"/out/tagged:1"), &pushedTagged)
	if got := pushedTagged.arches(); !slices.Equal(got, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("kiln push of the -t list: skopeo reads %v", got)
	}

	// --all-platforms: the platforms of the base list, from the cache.
	out, errOut, code = e.kiln("build", "--tls-verify=false", "--layers", "--all-platforms", "--manifest", "localhost/all", ctxDir)
	if code != 0 {
		t.Fatalf("kiln build --all-platforms: exit %d\n%s\n%s", code, out, errOut)
	}
	var all indexOf
	decodeJSON(t, e.mustKiln("manifest", "inspect", "localhost/all"), &all)
	if got := all.arches(); !slices.Equal(got, []string{"linux/amd64", "linux/arm64"}) || strings.Count(out, "Using cache") != 8 {
		t.Errorf("--all-platforms made a list of %v with %d cache hits (want both platforms, 8):\n%s", got, strings.Count(out, "Using cache"), out)
	}

	// A platform that fails: its RUN's status, its platform named.
	failDir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(failDir, "Dockerfile"), []byte("FROM "+base+"\nRUN test \"$(uname -m)\" = x86_64\n"), 0o644))
	_, errOut, code = e.kiln("build", "--tls-verify=false", "--platform", "linux/amd64,linux/arm64", failDir)
	if code != 1 || !strings.Contains(errOut, "[linux/arm64]: building at STEP") {
		t.Errorf("build whose arm64 RUN fails: exit %d, stderr %q; want 1 naming [linux/arm64]", code, errOut)
	}

	// The base's arm64 instance: pulled by platform, inspected, run.
	id := e.mustKiln("pull", "-q", "--tls-verify=false", "--platform", "linux/arm64", "docker://"+base)
	if got := e.mustKiln("inspect", "--format", "{{.OCIv1.Architecture}}", id); got != "arm64" {
		t.Errorf("inspect of the pulled arm64 image: architecture %q", got)
	}
	if got := e.mustKiln("images", "--format", "{{.Platform}}", id); got != "linux/arm64" {
		t.Errorf("images --format {{.Platform}} of the pulled arm64 image: %q", got)
	}
	c := e.mustKiln("from", "--tls-verify=false", "--platform", "linux/arm64", "docker://"+base)
	if got := e.mustKiln("run", c, "--", "sh", "-c", "uname -m"); got != "aarch64" {
		t.Errorf("run in an arm64 container printed %q", got)
	}
	e.mustKiln("rm", c)
}

// TestNoEmulator: without an emulator registered (an empty binfmt_misc in
// kiln's own mount namespace), a RUN of arm64 binaries and kiln run in an
// arm64 container fail before they start, naming the architecture and
// Debian's package.
func TestNoEmulator(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the foreign platform is arm64 on an amd64 host")
	}
	requiresRoot(t)
	host := plainRegistry(t)
	base := testbase.PushMultiArch(t, host, "amd64", "arm64")
	e := newEnv(t, "")
	ctxDir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM "+base+"\nRUN uname -m\n"), 0o644))
	c := e.mustKiln("from", "--tls-verify=false", "--platform", "linux/arm64", "docker://"+base)
	for _, args := range [][]string{
		{"build", "--tls-verify=false", "--platform", "linux/arm64", ctxDir},
		{"run", c, "--", "sh", "-c", "uname -m"},
	} {
		cmd := e.command(args...)
		cmd.Args = append([]string{"unshare", "--mount", "--propagation", "private", "sh", "-c",
			`mount -t tmpfs none /proc/sys/fs/binfmt_misc && exec "$0" "$@"`}, cmd.Args...)
		cmd.Path = transporttest.NeedBinary(t, "unshare")
		outb, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 125 {
			t.Fatalf("kiln %s of arm64 binaries without an emulator: %v, want exit 125\n%s", args[0], err, outb)
		}
		for _, w := range []string{"arm64", "qemu-user-static", "binfmt_misc"} {
			if !strings.Contains(string(outb), w) {
				t.Errorf("kiln %s: the error does not say %q:\n%s", args[0], w, outb)
			}
		}
	}
	e.mustKiln("rm", c)
}
