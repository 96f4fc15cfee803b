package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestBuildCopyMakesNoFiles: a COPY of 2,000 files onto a pulled base
// creates nothing under the store's driver directory: its layer is a
// blob (storage info counts it) until a run needs its files, which are
// then made once. The image pushed has the layer a COPY in a container
// makes, byte for byte: the same diff IDs, and the same tree.
func TestBuildCopyMakesNoFiles(t *testing.T) {
	e := newEnv(t, "")
	e.foreignBusybox()
	dir := t.TempDir()
	for i := range 2000 {
		p := filepath.Join(dir, "files", fmt.Sprintf("d%02d", i/100), fmt.Sprintf("f%04d.txt", i))
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(strings.Repeat(fmt.Sprintf("%d\n", i), i%50+1)), 0o644))
	}
	must(t, os.Symlink("d00/f0000.txt", filepath.Join(dir, "files", "first")))
	must(t, os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM localhost/busybox\nCOPY files/ /data/\n"), 0o644))
	driverDir := filepath.Join(e.root, "root", "overlay")
	before := inodes(t, driverDir)

	e.mustKiln("build", "--timestamp", "1700000000", "-t", "streamed", dir)
	if got := inodes(t, driverDir); got != before {
		t.Errorf("%d inodes under %s after the build, %d before: the COPY made files", got, driverDir, before)
	}
	var info struct{ FileLayers, BlobOnlyLayers int }
	must(t, json.Unmarshal([]byte(e.mustKiln("storage", "info", "--format", "json")), &info))
	if info.BlobOnlyLayers != 2 || info.FileLayers != 0 {
		t.Errorf("storage info: %d layers with files, %d only blobs; want 0 and 2 (the base, the COPY)", info.FileLayers, info.BlobOnlyLayers)
	}

	// Without --layers, a step before the COPY puts it in a container.
	df := filepath.Join(t.TempDir(), "Dockerfile")
	must(t, os.WriteFile(df, []byte("FROM localhost/busybox\nENV STEP=one\nCOPY files/ /data/\n"), 0o644))
	e.mustKiln("build", "--layers=false", "--timestamp", "1700000000", "-t", "contained", "-f", df, dir)
	layout := t.TempDir()
	e.mustKiln("push", "-q", "streamed", "oci:"+layout+":streamed")
	e.mustKiln("push", "-q", "contained", "oci:"+layout+":contained")
	streamed, contained := layoutDiffIDs(t, layout, "streamed"), layoutDiffIDs(t, layout, "contained")
	if diff := cmp.Diff(contained, streamed); diff != "" || len(streamed) != 2 {
		t.Errorf("pushed diff IDs (-in a container +streamed):\n%s", diff)
	}

	c := e.mustKiln("from", "streamed")
	if got := e.mustKiln("run", c, "--", "sh", "-c", "cat /data/first /data/d19/f1999.txt | wc -l; find /data -type f | wc -l"); got != "51\n2000" {
		t.Errorf("run in the streamed image: %q", got)
	}
	if got := inodes(t, driverDir); got < before+2000 {
		t.Errorf("%d inodes under %s after a run, want the 2,000 files made", got, driverDir)
	}
	must(t, json.Unmarshal([]byte(e.mustKiln("storage", "info", "--format", "json")), &info))
	if info.BlobOnlyLayers != 0 {
		t.Errorf("storage info after the run: %d layers only blobs, want 0", info.BlobOnlyLayers)
	}
	mnt := e.mustKiln("mount", c)
	c2 := e.mustKiln("from", "contained")
	mnt2 := e.mustKiln("mount", c2)
	if diff := cmp.Diff(treeOf(t, filepath.Join(mnt2, "data")), treeOf(t, filepath.Join(mnt, "data"))); diff != "" {
		t.Errorf("/data (-in a container +streamed):\n%s", diff)
	}
}

// inodes counts what is below dir.
func inodes(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	must(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			// Gone while walked: a kiln at work renames its temporary
			// directories into place.
			return nil
		}
		if err == nil {
			n++
		}
		return err
	}))
	return n
}

// layoutDiffIDs reads the diff IDs of the image tagged tag in an OCI
// layout.
func layoutDiffIDs(t *testing.T, layout, tag string) []string {
	t.Helper()
	var index struct {
		Manifests []struct {
			Digest      string
			Annotations map[string]string
		}
	}
	blob := func(d string) []byte {
		b, err := os.ReadFile(filepath.Join(layout, "blobs", strings.Replace(d, ":", "/", 1)))
		must(t, err)
		return b
	}
	b, err := os.ReadFile(filepath.Join(layout, "index.json"))
	must(t, err)
	must(t, json.Unmarshal(b, &index))
	for _, m := range index.Manifests {
		if m.Annotations["org.opencontainers.image.ref.name"] != tag {
			continue
		}
		var manifest struct{ Config struct{ Digest string } }
		must(t, json.Unmarshal(blob(m.Digest), &manifest))
		var cfg struct {
			RootFS struct {
				DiffIDs []string `json:"diff_ids"`
			} `json:"rootfs"`
		}
		must(t, json.Unmarshal(blob(manifest.Config.Digest), &cfg))
		return cfg.RootFS.DiffIDs
	}
	t.Fatalf("no image %s in %s", tag, layout)
	return nil
}
