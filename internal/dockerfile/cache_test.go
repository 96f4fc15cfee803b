package dockerfile

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store"
)

const cacheDockerfile = `FROM busybox
COPY a.txt /a.txt
RUN cat /a.txt > /a.copy
COPY b.txt /b.txt
RUN cat /b.txt > /b.copy
`

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		must(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
}

// TestCacheRules: a rebuild hits every step; changing b.txt invalidates
// exactly the steps from COPY b.txt on; --no-cache rebuilds all; with a
// fixed timestamp cached and uncached builds give the same image ID.
func TestCacheRules(t *testing.T) {
	st := testStore(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.txt": "a\n", "b.txt": "b\n"})
	ts := time.Unix(1700000000, 0)
	fixed := func(o *Options) { o.Commit.Timestamp = &ts }

	first, out, err := buildIn(t, st, dir, cacheDockerfile, fixed)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if n := strings.Count(out, "Using cache"); n != 0 {
		t.Errorf("first build hit the cache %d times:\n%s", n, out)
	}
	again, out, err := buildIn(t, st, dir, cacheDockerfile, fixed)
	must(t, err)
	if n := strings.Count(out, "Using cache"); n != 4 || again.ID != first.ID {
		t.Errorf("rebuild: %d hits (want 4), ID %s (want %s)\n%s", n, again.ID, first.ID, out)
	}

	writeFiles(t, dir, map[string]string{"b.txt": "b changed\n"})
	changed, out, err := buildIn(t, st, dir, cacheDockerfile, fixed)
	must(t, err)
	if n := strings.Count(out, "Using cache"); n != 2 || changed.ID == first.ID {
		t.Errorf("after changing b.txt: %d hits (want 2), ID %s\n%s", n, changed.ID, out)
	}
	if got, _ := os.ReadFile(filepath.Join(rootOf(t, st, changed), "b.copy")); string(got) != "b changed\n" {
		t.Errorf("b.copy = %q", got)
	}

	nocache, out, err := buildIn(t, st, dir, cacheDockerfile, func(o *Options) { fixed(o); o.Cache.NoCache = true })
	must(t, err)
	if n := strings.Count(out, "Using cache"); n != 0 || nocache.ID != changed.ID {
		t.Errorf("--no-cache: %d hits, ID %s, want the cached build's %s\n%s", n, nocache.ID, changed.ID, out)
	}
	nolayers, out, err := buildIn(t, st, dir, cacheDockerfile, func(o *Options) { fixed(o); o.Cache.Layers = false })
	must(t, err)
	if strings.Contains(out, "Using cache") {
		t.Errorf("--layers=false used the cache:\n%s", out)
	}
	if got, _ := os.ReadFile(filepath.Join(rootOf(t, st, nolayers), "a.copy")); string(got) != "a\n" {
		t.Errorf("--layers=false: a.copy = %q", got)
	}
}

// TestFailedBuildLeavesNothing: a failing RUN and a cancelled build
// leave no working containers, and the next build works.
func TestFailedBuildLeavesNothing(t *testing.T) {
	st := testStore(t)
	dir := t.TempDir()
	ctx := context.Background()
	if _, _, err := buildIn(t, st, dir, "FROM busybox\nRUN touch /x\nRUN exit 7\n", nil); err == nil {
		t.Fatal("build with RUN exit 7 succeeded")
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := Build(cctx, st, Options{ContextDir: dir, DockerfileName: "Dockerfile",
			Dockerfile: []byte("FROM busybox\nRUN sleep 30\n"), Cache: CacheOptions{Layers: true}})
		done <- err
	}()
	time.Sleep(700 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("cancelled build succeeded")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("cancelled build did not stop")
	}
	cs, err := container.All(ctx, st)
	must(t, err)
	if len(cs) != 0 {
		t.Errorf("%d containers left after failed builds", len(cs))
	}
	if _, out, err := buildIn(t, st, dir, "FROM busybox\nRUN echo ok > /ok\n", nil); err != nil {
		t.Fatalf("next build: %v\n%s", err, out)
	}
}

// TestParallelBuildsShareCache: builds running at once on one store
// share the cache safely and agree on the result.
func TestParallelBuildsShareCache(t *testing.T) {
	st := testStore(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.txt": "a\n", "b.txt": "b\n"})
	ts := time.Unix(1700000000, 0)
	var wg sync.WaitGroup
	ids := make([]string, 4)
	errs := make([]error, 4)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			img, _, err := buildIn(t, st, dir, cacheDockerfile, func(o *Options) { o.Commit.Timestamp = &ts })
			ids[i], errs[i] = img.ID, err
		}()
	}
	wg.Wait()
	for i := range ids {
		if errs[i] != nil {
			t.Fatalf("build %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Errorf("build %d made %s, build 0 made %s", i, ids[i], ids[0])
		}
	}
}

// TestStagesInParallel: two independent stages overlap in time.
func TestStagesInParallel(t *testing.T) {
	st := testStore(t)
	dir := t.TempDir()
	// Each stage notes when its RUN began and ended: run in parallel, each
	// began before the other ended, however slow the machine is. The clock
	// is /proc/uptime (centiseconds): busybox's date has %N only in some
	// builds.
	df := `FROM busybox AS one
RUN cut -d' ' -f1 /proc/uptime > /t1 && sleep 1 && cut -d' ' -f1 /proc/uptime >> /t1
FROM busybox AS two
RUN cut -d' ' -f1 /proc/uptime > /t2 && sleep 1 && cut -d' ' -f1 /proc/uptime >> /t2
FROM busybox
COPY --from=one /t1 /t1
COPY --from=two /t2 /t2
`
	img, out, err := buildIn(t, st, dir, df, func(o *Options) { o.Jobs = 2 })
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	root := rootOf(t, st, img)
	var spans [2][2]float64
	for i, f := range []string{"t1", "t2"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fmt.Sscan(string(b), &spans[i][0], &spans[i][1]); err != nil {
			t.Fatalf("%s: %q: %v", f, b, err)
		}
	}
	if spans[0][0] >= spans[1][1] || spans[1][0] >= spans[0][1] {
		t.Errorf("the stages ran one after the other: %v", spans)
	}
	if !strings.Contains(out, "[1/3] STEP") || !strings.Contains(out, "[2/3] STEP") {
		t.Errorf("output lacks stage prefixes:\n%s", out)
	}
}

// TestCachedImageRemovedMeanwhile: when another process removes an image
// the build has just taken from the cache, the build runs again and
// succeeds instead of failing with "image not known".
func TestCachedImageRemovedMeanwhile(t *testing.T) {
	st := testStore(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.txt": "a\n", "b.txt": "b\n"})
	if _, out, err := buildIn(t, st, dir, cacheDockerfile, nil); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	writeFiles(t, dir, map[string]string{"b.txt": "changed\n"}) // steps 1-2 hit, 3 misses
	removed := false
	testHookAfterHit = func(img store.Image) { // every hit is removed right after
		removed = true
		must(t, st.DeleteImage(context.Background(), img.ID))
	}
	defer func() { testHookAfterHit = nil }()
	img, out, err := buildIn(t, st, dir, cacheDockerfile, nil)
	if err != nil {
		t.Fatalf("build after a cached image was removed: %v\n%s", err, out)
	}
	if !removed || !strings.Contains(out, "building again") {
		t.Errorf("the removal did not happen or was not noticed:\n%s", out)
	}
	if b, _ := os.ReadFile(filepath.Join(rootOf(t, st, img), "b.copy")); string(b) != "changed\n" {
		t.Errorf("b.copy = %q", b)
	}
}

// TestCacheAcrossFormats: an OCI build's last step is found again when
// the same stage is an earlier stage of another build (whose steps are
// Docker-format images), as Buildah finds it (bud-multistage-partial-
// cache); a step that sets a Docker-only field (SHELL) is not, since its
// OCI image lacks the field.
func TestCacheAcrossFormats(t *testing.T) {
	st := testStore(t)
	dir := t.TempDir()
	oci := func(o *Options) { o.Commit.Format = image.FormatOCI }
	for _, c := range []struct {
		name, last string
		hit        bool
	}{
		{"run", "RUN touch /tmpfile", true},
		{"shell", `SHELL ["/bin/sh", "-e", "-c"]`, false},
	} {
		stage := "FROM busybox AS builder\n" + c.last + "\n"
		if _, out, err := buildIn(t, st, dir, stage, oci); err != nil {
			t.Fatalf("%s: %v\n%s", c.name, err, out)
		}
		_, out, err := buildIn(t, st, dir, stage+"FROM busybox\nCOPY --from=builder /bin/busybox /copied\n", oci)
		if err != nil {
			t.Fatalf("%s: %v\n%s", c.name, err, out)
		}
		if hit := strings.Contains(out, "Using cache"); hit != c.hit {
			t.Errorf("%s: the earlier stage's step hit the cache: %v, want %v\n%s", c.name, hit, c.hit, out)
		}
	}
}

// TestCacheKeysVolumes: a RUN with another --volume is another step; the
// same one is found in the cache.
func TestCacheKeysVolumes(t *testing.T) {
	st := testStore(t)
	dir := t.TempDir()
	const df = "FROM busybox\nRUN cat /vol/x > /seen\n"
	seen := map[string]string{}
	for i, content := range []string{"one\n", "two\n", "two\n"} {
		vol := t.TempDir()
		if i == 2 {
			vol = seen["two-dir"]
		}
		must(t, os.WriteFile(filepath.Join(vol, "x"), []byte(content), 0o644))
		img, out, err := buildIn(t, st, dir, df, func(o *Options) {
			o.Run.Mounts = []specs.Mount{{Type: "bind", Source: vol, Destination: "/vol", Options: []string{"rbind", "ro"}}}
		})
		if err != nil {
			t.Fatalf("build %d: %v\n%s", i, err, out)
		}
		got, _ := os.ReadFile(filepath.Join(rootOf(t, st, img), "seen"))
		if string(got) != content {
			t.Errorf("build %d: /seen = %q, want %q\n%s", i, got, content, out)
		}
		if hit := strings.Contains(out, "Using cache"); hit != (i == 2) {
			t.Errorf("build %d: cache hit %v\n%s", i, hit, out)
		}
		seen["two-dir"] = vol
	}
}
