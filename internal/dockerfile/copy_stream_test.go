package dockerfile

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/store"
)

// TestStreamedCopyMatchesContainer builds every conformance case twice,
// with COPY and ADD streamed into layers (the default) and run in
// containers as before, and requires the same layers: byte for byte the
// same tars (diff IDs). Times are fixed so that the comparison is
// exact: context files get old times of their own, and --timestamp
// clamps what the build makes (the time of the copy on the directories it
// writes into).
func TestStreamedCopyMatchesContainer(t *testing.T) {
	cases, err := filepath.Glob("testdata/cases/*")
	must(t, err)
	st := testStore(t)
	ts := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, dir := range cases {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var exp expectation
			raw, err := os.ReadFile(filepath.Join(dir, "expect.json"))
			must(t, err)
			must(t, json.Unmarshal(raw, &exp))
			if exp.Error != "" {
				return
			}
			ctxDir := oldContext(t, filepath.Join(dir, "context"))
			df, err := os.ReadFile(filepath.Join(dir, "Dockerfile"))
			must(t, err)
			ignore, err := ReadIgnore("", filepath.Join(dir, "Dockerfile"), ctxDir)
			must(t, err)
			build := func(container bool) ([]digest.Digest, int) {
				t.Helper()
				testForceContainerCopy = container
				defer func() { testForceContainerCopy = false }()
				if exp.Parent {
					pdf, err := os.ReadFile(filepath.Join(dir, "parent", "Dockerfile"))
					must(t, err)
					if _, out, err := buildIn(t, st, ctxDir, string(pdf), func(o *Options) {
						o.Tags = []string{"localhost/parent:latest"}
						o.Commit.Timestamp = &ts
					}); err != nil {
						t.Fatalf("parent build: %v\n%s", err, out)
					}
				}
				secretDir := t.TempDir()
				img, out, err := buildIn(t, st, ctxDir, string(df), func(o *Options) {
					o.Args, o.Target, o.Ignore = exp.Args, exp.Target, ignore
					o.Commit.Timestamp = &ts
					o.Cache.NoCache = true
					o.Run.Secrets = map[string]Secret{}
					for id, v := range exp.Secrets {
						p := filepath.Join(secretDir, id)
						must(t, os.WriteFile(p, []byte(v), 0o600))
						o.Run.Secrets[id] = Secret{Src: p}
					}
				})
				if err != nil {
					t.Fatalf("build (container copies: %t): %v\n%s", container, err, out)
				}
				return configOf(t, st, img).RootFS.DiffIDs, blobOnly(t, st, img)
			}
			var fallbacks []string
			testHookFallback = func(step string, err error) { fallbacks = append(fallbacks, step+": "+err.Error()) }
			defer func() { testHookFallback = nil }()
			streamed, lazy := build(false)
			for _, f := range fallbacks {
				t.Logf("in a container: %s", f)
			}
			contained, _ := build(true)
			if diff := cmp.Diff(contained, streamed); diff != "" {
				t.Errorf("diff IDs (-container +streamed):\n%s", diff)
			}
			if strings.Contains(string(df), "COPY") && lazy == 0 && !strings.Contains(string(df), "RUN") {
				t.Errorf("no layer of the streamed build is only a blob")
			}
		})
	}
}

// blobOnly counts the layers of img above the busybox base's that have
// no files yet.
func blobOnly(t *testing.T, st *store.Store, img store.Image) int {
	t.Helper()
	ctx := context.Background()
	base, err := st.LookupImage(ctx, "localhost/busybox:latest")
	must(t, err)
	below := map[string]bool{}
	baseChain, err := st.LayerChain(ctx, base.TopLayer)
	must(t, err)
	for _, l := range baseChain {
		below[l.ID] = true
	}
	chain, err := st.LayerChain(ctx, img.TopLayer)
	must(t, err)
	n := 0
	for _, l := range chain {
		if !l.Files && !below[l.ID] {
			n++
		}
	}
	return n
}

// oldContext copies a case's context (if any) to a temporary directory
// whose entries have old times, distinct for each entry.
func oldContext(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	if _, err := os.Stat(src); err != nil {
		return dst
	}
	base := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	var paths []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case rel == ".":
		case fi.IsDir():
			must(t, os.Mkdir(target, fi.Mode().Perm()))
		case fi.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			must(t, err)
			must(t, os.Symlink(link, target))
		default:
			data, err := os.ReadFile(p)
			must(t, err)
			must(t, os.WriteFile(target, data, fi.Mode().Perm()))
		}
		paths = append(paths, target)
		return nil
	})
	must(t, err)
	for i := len(paths) - 1; i >= 0; i-- { // contents before their directory
		at := unix.NsecToTimespec(base.Add(time.Duration(i) * time.Hour).UnixNano())
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], []unix.Timespec{at, at}, unix.AT_SYMLINK_NOFOLLOW))
	}
	return dst
}

// TestStreamedCopyMakesNoFiles: a COPY makes no file in the store's
// driver directory; the RUN after it makes its layer's files, once.
func TestStreamedCopyMakesNoFiles(t *testing.T) {
	st := testStore(t)
	dir := t.TempDir()
	for i := range 200 {
		p := filepath.Join(dir, "files", fmt.Sprintf("d%d", i%7), fmt.Sprintf("f%03d", i))
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(strings.Repeat("x", i)), 0o644))
	}
	home := st.Driver().Home()
	before := countEntries(t, home)
	img, out, err := buildIn(t, st, dir, "FROM busybox\nCOPY files/ /data/\nENV A=b\nCOPY files/d1 /more/\n", nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := countEntries(t, home); got != before {
		t.Errorf("%d entries under %s after the COPY build, %d before", got, home, before)
	}
	if n := blobOnly(t, st, img); n != 2 {
		t.Errorf("%d layers only blobs, want the two COPY layers", n)
	}
	img2, out, err := buildIn(t, st, dir, "FROM busybox\nCOPY files/ /data/\nENV A=b\nCOPY files/d1 /more/\nRUN ls -R /data /more | wc -l > /count\n", nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if n := strings.Count(out, "Using cache"); n != 3 {
		t.Errorf("%d cache hits, want the 3 steps before the RUN:\n%s", n, out)
	}
	if n := blobOnly(t, st, img2); n != 0 {
		t.Errorf("%d layers still only blobs after a RUN on them", n)
	}
	if got := countEntries(t, home); got < before+200 {
		t.Errorf("%d entries under %s after the RUN, want the files made (%d before)", got, home, before)
	}
	if b, err := os.ReadFile(filepath.Join(rootOf(t, st, img2), "count")); err != nil || strings.TrimSpace(string(b)) == "" {
		t.Errorf("count: %q, %v", b, err)
	}
}

// countEntries counts what is below dir.
func countEntries(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	must(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			n++
		}
		return err
	}))
	return n
}

// TestStreamedCopyKeyIsTheContainersKey: a cold build streams its COPY
// and takes the file digests of the key on the way; the key is the one
// the container's copy computes, and the digests are remembered.
func TestStreamedCopyKeyIsTheContainersKey(t *testing.T) {
	st := testStore(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.txt": "a\n", "b.txt": "b\n"})
	df := "FROM busybox\nCOPY . /src/\nCOPY --from=localhost/busybox /etc/passwd /p\n"
	first, out, err := buildIn(t, st, dir, df, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	known, err := st.FileHashes(context.Background(), dir)
	must(t, err)
	if len(known) != 2 {
		t.Errorf("%d file digests remembered after a cold build, want 2", len(known))
	}
	testForceContainerCopy = true
	defer func() { testForceContainerCopy = false }()
	again, out, err := buildIn(t, st, dir, df, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if n := strings.Count(out, "Using cache"); n != 2 || again.ID != first.ID {
		t.Errorf("the container's build hit the cache %d times (want 2), ID %s (want %s):\n%s", n, again.ID, first.ID, out)
	}
}

// TestCopyLinkSurvivesBaseChange: a COPY --link is not made again when
// the image below it changes; its layer (same diff ID) is placed on the
// new one.
func TestCopyLinkSurvivesBaseChange(t *testing.T) {
	st := testStore(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.txt": "a\n", "b.txt": "b\n"})
	df := "FROM localhost/base\nCOPY --link . /app/\nCOPY b.txt /plain/\n"
	base := func(content string) {
		t.Helper()
		_, out, err := buildIn(t, st, dir, "FROM busybox\nRUN echo "+content+" > /base\n", func(o *Options) { o.Tags = []string{"localhost/base:latest"} })
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	base("one")
	first, out, err := buildIn(t, st, dir, df, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	base("two")
	second, out, err := buildIn(t, st, dir, df, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "Using linked layer") {
		t.Errorf("COPY --link was made again after the base changed:\n%s", out)
	}
	d1, d2 := configOf(t, st, first).RootFS.DiffIDs, configOf(t, st, second).RootFS.DiffIDs
	if len(d1) != len(d2) || d1[len(d1)-2] != d2[len(d2)-2] {
		t.Errorf("linked layer's diff IDs: %v then %v", d1, d2)
	}
	if d1[len(d1)-3] == d2[len(d2)-3] {
		t.Errorf("the base layer did not change: %v, %v", d1, d2)
	}
	root := rootOf(t, st, second)
	for p, want := range map[string]string{"base": "two\n", "app/a.txt": "a\n", "plain/b.txt": "b\n"} {
		if b, err := os.ReadFile(filepath.Join(root, p)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", p, b, err, want)
		}
	}
	third, out, err := buildIn(t, st, dir, df, nil)
	must(t, err)
	if n := strings.Count(out, "Using cache"); n != 2 || third.ID != second.ID {
		t.Errorf("a rebuild hit %d steps (want 2) and made %s (want %s):\n%s", n, third.ID, second.ID, out)
	}
}

// TestCopyFromBlobStage: COPY --from a stage whose layers are only blobs
// reads them where they are: the stage's layers still have no files.
func TestCopyFromBlobStage(t *testing.T) {
	st := testStore(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.txt": "a\n", "b.txt": "b\n"})
	df := "FROM busybox AS gen\nCOPY . /gen/\nFROM busybox\nCOPY --from=gen /gen /copied\n"
	img, out, err := buildIn(t, st, dir, df, func(o *Options) { o.Target = "gen"; o.Tags = []string{"localhost/gen:latest"} })
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	img, out, err = buildIn(t, st, dir, df, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	gen, err := st.LookupImage(context.Background(), "localhost/gen:latest")
	must(t, err)
	if n := blobOnly(t, st, gen); n != 1 {
		t.Errorf("the stage's COPY layer: %d layers only blobs after COPY --from it, want 1", n)
	}
	if b, err := os.ReadFile(filepath.Join(rootOf(t, st, img), "copied/b.txt")); err != nil || string(b) != "b\n" {
		t.Errorf("copied/b.txt: %q, %v", b, err)
	}
}

// TestStreamedCopyWithoutLayers: without --layers a stage's changes are
// one layer: a COPY that is the stage's only change is streamed into it;
// after another step it runs in the container with the rest.
func TestStreamedCopyWithoutLayers(t *testing.T) {
	st := testStore(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.txt": "a\n"})
	for i, tc := range []struct {
		dockerfile string
		blobs      int
	}{
		{"FROM busybox\nCOPY a.txt /a.txt\n", 1},
		{"FROM busybox\nENV A=b\nCOPY a.txt /b.txt\n", 0},
		{"FROM busybox AS one\nCOPY a.txt /one.txt\nFROM busybox\nCOPY --from=one /one.txt /two.txt\nENV A=b\n", 0},
	} {
		img, out, err := buildIn(t, st, dir, tc.dockerfile, func(o *Options) {
			o.Cache.Layers = false
			o.Tags = []string{fmt.Sprintf("localhost/case:%d", i)}
		})
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		cfg := configOf(t, st, img)
		base := configOf(t, st, mustImage(t, st, "localhost/busybox:latest"))
		if got, want := len(cfg.History)-len(base.History), 1; got != want {
			t.Errorf("%q: %d history entries added, want %d", tc.dockerfile, got, want)
		}
		if got, want := len(cfg.RootFS.DiffIDs)-len(base.RootFS.DiffIDs), 1; got != want {
			t.Errorf("%q: %d layers added, want %d", tc.dockerfile, got, want)
		}
		if got := blobOnly(t, st, img); got != tc.blobs {
			t.Errorf("%q: %d layers only blobs, want %d", tc.dockerfile, got, tc.blobs)
		}
	}
	imgs, err := st.Images(context.Background())
	must(t, err)
	for _, img := range imgs {
		if len(img.Names) == 0 {
			t.Errorf("image %s left without a name (a stage's result)", img.ID)
		}
	}
}

// TestRebuildTakesRememberedDigests: a rebuild takes the digest the store
// remembers for a file whose stat data did not change, without reading
// it, and reads only the file that changed. A remembered digest is made
// wrong on purpose: the key built with it misses the cache, and it is
// still there after a rebuild that read the changed file.
func TestRebuildTakesRememberedDigests(t *testing.T) {
	ctx := context.Background()
	st := testStore(t)
	dir, err := filepath.EvalSymlinks(t.TempDir())
	must(t, err)
	must(t, os.MkdirAll(filepath.Join(dir, "files"), 0o755))
	for i := range 100 {
		must(t, os.WriteFile(filepath.Join(dir, "files", fmt.Sprintf("f%03d", i)), []byte(fmt.Sprintf("file %d\n", i)), 0o644))
	}
	df := "FROM busybox\nCOPY files/ /data/\n"
	first, out, err := buildIn(t, st, dir, df, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	known, err := st.FileHashes(ctx, dir)
	must(t, err)
	if len(known) != 100 {
		t.Fatalf("%d digests remembered after the first build, want 100", len(known))
	}
	same := filepath.Join(dir, "files", "f007")
	wrong := known[same]
	wrong.Sum = strings.Repeat("0", 64)
	must(t, st.PutFileHashes(ctx, dir, map[string]store.FileHash{same: wrong}))

	again, out, err := buildIn(t, st, dir, df, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if again.ID == first.ID || strings.Contains(out, "Using cache") {
		t.Errorf("nothing changed but a remembered digest, and the rebuild hit the cache: the file was read instead\n%s", out)
	}

	changed := filepath.Join(dir, "files", "f042")
	must(t, os.WriteFile(changed, []byte("changed\n"), 0o644))
	if _, out, err = buildIn(t, st, dir, df, nil); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	known, err = st.FileHashes(ctx, dir)
	must(t, err)
	if got := known[same].Sum; got != wrong.Sum {
		t.Errorf("digest of the unchanged file after a rebuild: %s, want the remembered one (not read again)", got)
	}
	if got, want := known[changed].Sum, digest.FromString("changed\n").Encoded(); got != want {
		t.Errorf("digest of the changed file: %s, want %s", got, want)
	}
}

// TestHashTreeLines: the lines a COPY's key hashes are those of the
// fmt-based writer the cache keys were made with (keys of older builds
// stay valid): path relative to the root, mode in octal, then the link
// target or the size and content digest.
func TestHashTreeLines(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	must(t, err)
	must(t, os.MkdirAll(filepath.Join(dir, "a", "b"), 0o750))
	writeFiles(t, dir, map[string]string{"a/one": "1\n", "a/b/two": "22\n", "top": ""})
	must(t, os.Symlink("../top", filepath.Join(dir, "a", "link")))
	must(t, os.Chmod(filepath.Join(dir, "a", "one"), 0o4755))
	bc, err := newBuildContext(dir, nil)
	must(t, err)
	for _, tc := range []struct{ root, top string }{{dir, dir}, {dir, filepath.Join(dir, "a")}, {filepath.Join(dir, "a"), filepath.Join(dir, "a", "one")}} {
		var got strings.Builder
		must(t, bc.hashTree(&got, tc.root, tc.top, true, bc.fileSum))
		var want strings.Builder
		must(t, filepath.WalkDir(tc.top, func(p string, d fs.DirEntry, err error) error {
			must(t, err)
			fi, err := d.Info()
			must(t, err)
			rel, _ := filepath.Rel(tc.root, p)
			fmt.Fprintf(&want, "%s %o", rel, fi.Mode())
			switch {
			case fi.Mode()&fs.ModeSymlink != 0:
				target, _ := os.Readlink(p)
				fmt.Fprintf(&want, " -> %s", target)
			case fi.Mode().IsRegular():
				sum, err := bc.fileSum(p, fi)
				must(t, err)
				fmt.Fprintf(&want, " %d %s", fi.Size(), sum)
			}
			want.WriteString("\n")
			return nil
		}))
		if diff := cmp.Diff(want.String(), got.String()); diff != "" {
			t.Errorf("hashTree(%s, %s) (-fmt +got):\n%s", tc.root, tc.top, diff)
		}
	}
}
