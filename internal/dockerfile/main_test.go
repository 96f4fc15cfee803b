package dockerfile

import (
	"bytes"
	"context"
	"github.com/kiln-build/kiln/internal/testbase"
	"github.com/kiln-build/kiln/internal/transport"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/run"
	"github.com/kiln-build/kiln/internal/store"
	_ "github.com/kiln-build/kiln/internal/store/driver/overlay"
	_ "github.com/kiln-build/kiln/internal/store/driver/vfs"
	"github.com/kiln-build/kiln/internal/testenv"
)

func TestMain(m *testing.M) {
	if run.IsReexec() {
		os.Exit(run.Reexec())
	}
	code := m.Run()
	testbase.Cleanup() // the layouts MultiArchLayout made
	os.Exit(code)
}

const testPasswd = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:App:/home/app:/bin/sh\n"
const testGroup = "root:x:0:\napp:x:1000:\n"

// testStore opens a fresh overlay store with a busybox image named
// localhost/busybox in it. It skips without root or busybox-static
// (fails in CI: testenv).
func testStore(t *testing.T) *store.Store {
	t.Helper()
	testenv.NeedRoot(t, "the store mounts overlay snapshots")
	bb := testenv.NeedBinary(t, "busybox")
	dir := t.TempDir()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "run"), Driver: "overlay"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cs, _ := container.All(ctx, st)
		for _, c := range cs {
			_ = c.Remove(ctx)
		}
		st.Close()
	})
	// The base is made by another tool (umoci), as users' bases are: a
	// layer kiln wrote itself could always be written again the same way
	// and would hide a mistake in how kiln keeps other tools' layers.
	root := t.TempDir()
	for _, d := range []string{"bin", "etc", "tmp"} {
		must(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	data, err := os.ReadFile(bb)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(root, "bin/busybox"), data, 0o755))
	if out, err := exec.Command("chroot", root, "/bin/busybox", "--install", "-s", "/bin").CombinedOutput(); err != nil {
		t.Fatalf("busybox --install: %v: %s", err, out)
	}
	must(t, os.WriteFile(filepath.Join(root, "etc/passwd"), []byte(testPasswd), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "etc/group"), []byte(testGroup), 0o644))
	ref, err := transport.ParseReference(testbase.RootfsLayout(t, root, image.DefaultPath))
	must(t, err)
	src, err := ref.NewSource(ctx, nil)
	must(t, err)
	defer src.Close()
	dst := st.NewImageDestination([]string{"localhost/busybox:latest"})
	defer dst.Close()
	if _, err := transport.Copy(ctx, dst, src, transport.CopyOptions{}); err != nil {
		t.Fatalf("pulling the base umoci made: %v", err)
	}
	return st
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// buildIn runs a build of dockerfile with context dir and returns the
// final image and what the build printed.
func buildIn(t *testing.T, st *store.Store, dir, dockerfile string, mod func(*Options)) (store.Image, string, error) {
	t.Helper()
	var out bytes.Buffer
	o := Options{
		ContextDir: dir, Dockerfile: []byte(dockerfile), DockerfileName: "Dockerfile",
		Commit:  CommitOptions{Format: image.FormatDocker},
		Cache:   CacheOptions{Layers: true},
		StepIDs: true,
		Run:     RunOptions{Isolation: run.IsolationOCI, Network: run.NetworkHost},
		Out:     &out,
	}
	if mod != nil {
		mod(&o)
	}
	res, err := Build(context.Background(), st, o)
	if err != nil {
		return store.Image{}, out.String(), err
	}
	img, err := st.Image(context.Background(), res.ImageID)
	if err != nil {
		t.Fatal(err)
	}
	return img, out.String(), nil
}

// rootOf mounts img and returns its root; unmounted at cleanup.
func rootOf(t *testing.T, st *store.Store, img store.Image) string {
	t.Helper()
	ctx := context.Background()
	c, err := container.New(ctx, st, container.NewOptions{Image: img.ID, Name: "check-" + img.ID[:12] + filepath.Base(t.TempDir())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Remove(ctx) })
	root, err := c.Mount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// configOf returns img's config.
func configOf(t *testing.T, st *store.Store, img store.Image) *image.Config {
	t.Helper()
	raw, err := st.ImageConfig(img)
	must(t, err)
	cfg, err := image.ParseConfig(raw)
	must(t, err)
	return cfg
}
