package dockerfile

import (
	"context"
	"encoding/json"
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

// blobOnly counts the layers of img that have no files yet.
func blobOnly(t *testing.T, st *store.Store, img store.Image) int {
	t.Helper()
	chain, err := st.LayerChain(context.Background(), img.TopLayer)
	must(t, err)
	n := 0
	for _, l := range chain {
		if !l.Files {
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
