package dockerfile

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
	"github.com/kiln-build/kiln/internal/transport/dockerarchive"
	"github.com/kiln-build/kiln/internal/transport/transporttest"
)

// diffCase is one conformance case as the differential run builds it.
type diffCase struct {
	name string
	dir  string // the case directory; Dockerfile and parent/ are here
	ctx  string // the build context
	exp  expectation
	// secrets maps a secret id to a file holding it.
	secrets map[string]string
}

// peerResult is what one builder made of a case.
type peerResult struct {
	archive string // a docker-archive of the built image; "" if the build failed
	out     string // what the builder printed
	err     error
	took    time.Duration
}

// peer builds cases with another image builder.
type peer interface {
	name() string
	// build builds dockerfile of c tagged tag and returns a docker-archive
	// of the result in dir.
	build(ctx context.Context, t *testing.T, c diffCase, dockerfile, tag, dir string) peerResult
}

// exportImage writes img of st to a docker-archive file tagged tag, the
// way `kiln push IMAGE docker-archive:FILE:TAG` does.
func exportImage(ctx context.Context, st *store.Store, img store.Image, file, tag string) error {
	dst, err := dockerarchive.NewDestination(file, []string{tag}, filepath.Dir(file))
	if err != nil {
		return err
	}
	defer dst.Close()
	if _, err := transport.Copy(ctx, dst, st.NewImageSource(ctx, img), transport.CopyOptions{}); err != nil {
		return fmt.Errorf("exporting %s to %s: %w", tag, file, err)
	}
	return nil
}

// peerArgs are the flags docker build and buildah bud share for a case.
func peerArgs(c diffCase, dockerfile, tag string) []string {
	args := []string{"--network", "host", "-f", dockerfile, "-t", tag}
	for _, k := range sortedKeys(c.exp.Args) {
		args = append(args, "--build-arg", k+"="+c.exp.Args[k])
	}
	if c.exp.Target != "" {
		args = append(args, "--target", c.exp.Target)
	}
	for _, id := range sortedKeys(c.secrets) {
		args = append(args, "--secret", "id="+id+",src="+c.secrets[id])
	}
	return append(args, c.ctx)
}

// runTool runs cmd and returns its combined output; the error names the
// command and carries its exit status.
func runTool(cmd *exec.Cmd) (string, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s %s: %w", filepath.Base(cmd.Path), strings.Join(cmd.Args[1:], " "), err)
	}
	return out.String(), err
}

// buildahPeer is Debian's buildah with a store of its own (vfs, so that
// nothing stays mounted) in a temporary directory.
type buildahPeer struct {
	root string
	bin  string
}

func newBuildahPeer(ctx context.Context, t *testing.T, base string) *buildahPeer {
	t.Helper()
	bin, err := exec.LookPath("buildah")
	if err != nil {
		t.Fatal("KILN_DIFFERENTIAL=1 needs buildah: scripts/differential.sh installs it")
	}
	dir, err := os.MkdirTemp("", "kiln-diff-buildah-")
	must(t, err)
	b := &buildahPeer{root: dir, bin: bin}
	t.Cleanup(func() { b.cleanup(t) })
	for _, args := range [][]string{
		{"pull", "-q", "docker-archive:" + base},
		{"tag", "localhost/busybox:latest", "docker.io/library/busybox:latest"},
	} {
		if out, err := runTool(b.cmd(ctx, args...)); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	return b
}

func (b *buildahPeer) name() string { return "buildah" }

func (b *buildahPeer) cmd(ctx context.Context, args ...string) *exec.Cmd {
	g := []string{"--root", filepath.Join(b.root, "root"), "--runroot", filepath.Join(b.root, "run"), "--storage-driver", "vfs"}
	cmd := exec.CommandContext(ctx, b.bin, append(g, args...)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+b.root, "BUILDAH_ISOLATION=oci")
	return cmd
}

func (b *buildahPeer) build(ctx context.Context, t *testing.T, c diffCase, dockerfile, tag, dir string) peerResult {
	start := time.Now()
	format := "docker"
	if c.exp.Format == "oci" {
		format = "oci"
	}
	args := append([]string{"bud", "--format", format, "--layers", "--pull=never"}, peerArgs(c, dockerfile, tag)...)
	out, err := runTool(b.cmd(ctx, args...))
	r := peerResult{out: out, err: err}
	if err == nil {
		r.archive = filepath.Join(dir, archiveName(tag))
		if o, err := runTool(b.cmd(ctx, "push", "-q", tag, "docker-archive:"+r.archive+":"+tag)); err != nil {
			r.archive, r.err, r.out = "", err, out+o
		}
	}
	r.took = time.Since(start)
	return r
}

func (b *buildahPeer) cleanup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _ = runTool(b.cmd(ctx, "rm", "--all"))
	_, _ = runTool(b.cmd(ctx, "rmi", "--all", "--force"))
	transporttest.UnmountUnder(b.root)
	if err := os.RemoveAll(b.root); err != nil {
		t.Logf("removing buildah's store: %v", err)
	}
}

// dockerPeer is Debian's dockerd on a socket of its own, building with
// BuildKit when it has it (classic is the fallback, and is reported).
type dockerPeer struct {
	d        *transporttest.Dockerd
	buildkit bool
}

func newDockerPeer(ctx context.Context, t *testing.T, base string) *dockerPeer {
	t.Helper()
	if _, err := exec.LookPath("dockerd"); err != nil {
		t.Fatal("KILN_DIFFERENTIAL=1 needs dockerd: scripts/differential.sh installs docker.io")
	}
	p := &dockerPeer{d: transporttest.StartDockerd(t), buildkit: true}
	p.d.Docker(t, "load", "-q", "-i", base)
	p.d.Docker(t, "tag", "localhost/busybox:latest", "busybox:latest")
	probe := t.TempDir()
	must(t, os.WriteFile(filepath.Join(probe, "Dockerfile"), []byte("FROM busybox\nRUN true\n"), 0o644))
	out, err := runTool(p.cmd(ctx, true, "build", "--progress=plain", "--network", "host", "-t", "localhost/probe", probe))
	switch {
	case err == nil && usedBuildKit(out):
		t.Logf("docker: dockerd builds with BuildKit")
	case err == nil:
		t.Fatalf("docker build with DOCKER_BUILDKIT=1 did not use BuildKit:\n%s", out)
	default:
		t.Logf("DIFFERENTIAL: Debian's docker.io has no working BuildKit (%v); falling back to the classic builder:\n%s", err, out)
		p.buildkit = false
	}
	return p
}

// usedBuildKit tells from a build's plain progress output whether BuildKit
// ran it: BuildKit numbers its vertices (#1 [internal] load build
// definition), the classic builder prints "Step 1/2 :".
func usedBuildKit(out string) bool {
	return strings.Contains(out, "[internal] load build definition") && !strings.Contains(out, "Step 1/")
}

func (p *dockerPeer) name() string {
	if p.buildkit {
		return "docker"
	}
	return "docker-classic"
}

func (p *dockerPeer) cmd(ctx context.Context, buildkit bool, args ...string) *exec.Cmd {
	cmd := p.d.Command(args...)
	c := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	c.Env = append(cmd.Env, fmt.Sprintf("DOCKER_BUILDKIT=%d", map[bool]int{true: 1, false: 0}[buildkit]))
	return c
}

func (p *dockerPeer) build(ctx context.Context, t *testing.T, c diffCase, dockerfile, tag, dir string) peerResult {
	start := time.Now()
	args := []string{"build"}
	if p.buildkit {
		args = append(args, "--progress=plain")
	}
	out, err := runTool(p.cmd(ctx, p.buildkit, append(args, peerArgs(c, dockerfile, tag)...)...))
	r := peerResult{out: out, err: err}
	if err == nil && p.buildkit && !usedBuildKit(out) {
		r.err = fmt.Errorf("docker build did not use BuildKit")
	}
	if r.err == nil {
		r.archive = filepath.Join(dir, archiveName(tag))
		if o, err := runTool(p.cmd(ctx, false, "save", "-o", r.archive, tag)); err != nil {
			r.archive, r.err, r.out = "", err, out+o
		}
	}
	r.took = time.Since(start)
	return r
}

// archiveName is the file name of the docker-archive of tag.
func archiveName(tag string) string {
	return strings.NewReplacer("/", "_", ":", "_").Replace(tag) + ".tar"
}
