package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Issue 16: a layer that arrives as a tar (a COPY, a pull, an import) is
// kept as a blob, and its files are made only when something needs them,
// once, by one process, surviving a kill -9 half-way.

// smallFilesContext writes a build context of n small files under
// files/ with Dockerfile df.
func smallFilesContext(t *testing.T, n int, df string) string {
	t.Helper()
	dir := t.TempDir()
	for i := range n {
		p := filepath.Join(dir, "files", fmt.Sprintf("d%02d", i/500), fmt.Sprintf("f%05d.txt", i))
		if i%500 == 0 {
			must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		}
		must(t, os.WriteFile(p, []byte(strings.Repeat(fmt.Sprintf("%d\n", i), i%40+1)), 0o644))
	}
	must(t, os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644))
	return dir
}

// layerCounts is what storage info says of the layers' files.
func (e *env) layerCounts() (files, blobOnly int) {
	e.t.Helper()
	var info struct{ FileLayers, BlobOnlyLayers int }
	must(e.t, json.Unmarshal([]byte(e.mustKiln("storage", "info", "--format", "json")), &info))
	return info.FileLayers, info.BlobOnlyLayers
}

// TestChangedRebuildMakesNoFiles: the rebuild of a COPY after one of its
// files changed streams the layer again, creating no file in the store;
// the new layer has the new content.
func TestChangedRebuildMakesNoFiles(t *testing.T) {
	e := newEnv(t, "")
	e.foreignBusybox()
	dir := smallFilesContext(t, 2000, "FROM localhost/busybox\nCOPY files/ /data/\n")
	driverDir := filepath.Join(e.root, "root", "overlay")
	first := e.mustKiln("build", "-q", "-t", "small", dir)
	before := inodes(t, driverDir)

	must(t, os.WriteFile(filepath.Join(dir, "files", "d01", "f00512.txt"), []byte("changed\n"), 0o644))
	out := e.mustKiln("build", "-t", "small", dir)
	if strings.Contains(out, "Using cache") {
		t.Errorf("the COPY of a changed file hit the cache:\n%s", out)
	}
	if got := inodes(t, driverDir); got != before {
		t.Errorf("%d inodes under %s after the rebuild, %d before: the rebuild made files", got, driverDir, before)
	}
	if files, blobs := e.layerCounts(); files != 0 || blobs != 3 {
		t.Errorf("storage info: %d layers with files, %d only blobs; want 0 and 3 (the base, two COPYs)", files, blobs)
	}
	if id := out[strings.LastIndex(out, "\n")+1:]; id == first {
		t.Errorf("the rebuild is the first build's image %s", first)
	}
	c := e.mustKiln("from", "small")
	if got := e.mustKiln("run", c, "--", "sh", "-c", "cat /data/d01/f00512.txt; find /data -type f | wc -l"); got != "changed\n2000" {
		t.Errorf("run in the rebuilt image: %q", got)
	}
}

// TestPulledImageStaysBlobs: an image that is pulled and only inspected,
// pushed on (to a registry, a layout, an archive) and exported and
// imported never has its layers' files made; what it pushed is read by
// skopeo, and the imported store runs it.
func TestPulledImageStaysBlobs(t *testing.T) {
	reg := plainRegistry(t)
	src := newEnv(t, "")
	src.foreignBusybox()
	dir := smallFilesContext(t, 1000, "FROM localhost/busybox\nCOPY files/ /data/\n")
	src.mustKiln("build", "-q", "-t", "small", dir)
	ref := reg + "/lazy/small:1"
	src.mustKiln("push", "-q", "--tls-verify=false", "small", "docker://"+ref)

	e := newEnv(t, "")
	driverDir := filepath.Join(e.root, "root", "overlay")
	e.mustKiln("images")
	before := inodes(t, driverDir)
	e.mustKiln("pull", "-q", "--tls-verify=false", "docker://"+ref)
	e.mustKiln("image", "inspect", ref)
	e.mustKiln("push", "-q", "--tls-verify=false", ref, "docker://"+reg+"/lazy/again:1")
	layout := t.TempDir()
	e.mustKiln("push", "-q", ref, "oci:"+layout+":small")
	archive := filepath.Join(t.TempDir(), "small.tar")
	e.mustKiln("push", "-q", ref, "docker-archive:"+archive+":lazy/small:1")
	export := filepath.Join(t.TempDir(), "export")
	e.mustKiln("storage", "export", "-q", "--dir", export)
	e.mustKiln("storage", "check")
	if got := inodes(t, driverDir); got != before {
		t.Errorf("%d inodes under %s after pull, inspect, pushes, export and check; %d before: layers were unpacked", got, driverDir, before)
	}
	if files, blobs := e.layerCounts(); files != 0 || blobs != 2 {
		t.Errorf("storage info: %d layers with files, %d only blobs; want 0 and 2", files, blobs)
	}

	var pushed struct{ Layers []string }
	decodeJSON(t, runPeer(t, "skopeo", "inspect", "--tls-verify=false", "docker://"+reg+"/lazy/again:1"), &pushed)
	var orig struct{ Layers []string }
	decodeJSON(t, runPeer(t, "skopeo", "inspect", "--tls-verify=false", "docker://"+ref), &orig)
	if strings.Join(pushed.Layers, " ") != strings.Join(orig.Layers, " ") || len(orig.Layers) != 2 {
		t.Errorf("pushed on with layers %v, pulled %v: want the same blobs", pushed.Layers, orig.Layers)
	}
	runPeer(t, "skopeo", "copy", "--quiet", "oci:"+layout+":small", "dir:"+t.TempDir())
	runPeer(t, "skopeo", "copy", "--quiet", "docker-archive:"+archive, "dir:"+t.TempDir())

	imp := newEnv(t, "")
	imp.mustKiln("storage", "import", "-q", "--dir", export)
	imp.mustKiln("storage", "check")
	if files, blobs := imp.layerCounts(); files != 0 || blobs != 2 {
		t.Errorf("imported store: %d layers with files, %d only blobs; want 0 and 2", files, blobs)
	}
	c := imp.mustKiln("from", ref)
	if got := imp.mustKiln("run", c, "--", "sh", "-c", "find /data -type f | wc -l"); got != "1000" {
		t.Errorf("files in a container of the imported image: %q", got)
	}
	if files, blobs := imp.layerCounts(); files != 2 || blobs != 0 {
		t.Errorf("imported store after a run: %d layers with files, %d only blobs; want 2 and 0", files, blobs)
	}
}

// TestFilesMadeOnce: containers of an image whose layers are blobs, run
// by several processes at once, all see the whole tree, made once; a
// process killed while it makes the files leaves a store that the next
// process repairs and that then has the whole tree.
func TestFilesMadeOnce(t *testing.T) {
	e := newEnv(t, "")
	e.foreignBusybox()
	driverDir := filepath.Join(e.root, "root", "overlay")

	dir := smallFilesContext(t, 2000, "FROM localhost/busybox\nCOPY files/ /data/\n")
	e.mustKiln("build", "-q", "-t", "together", dir)
	var ctrs []string
	for range 3 {
		ctrs = append(ctrs, e.mustKiln("from", "together"))
	}
	before := inodes(t, driverDir)
	var wg sync.WaitGroup
	outs := make([]string, len(ctrs))
	errs := make([]error, len(ctrs))
	for i, c := range ctrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := e.command("run", c, "--", "sh", "-c", "find /data -type f | wc -l").CombinedOutput()
			outs[i], errs[i] = strings.TrimSpace(string(out)), err
		}()
	}
	wg.Wait()
	for i := range ctrs {
		if errs[i] != nil || outs[i] != "2000" {
			t.Errorf("run %d at once: %q, %v; want 2000 files", i, outs[i], errs[i])
		}
	}
	// One copy of the files: 2,000 files and 5 directories of the COPY,
	// the base's files and the containers' own few entries.
	if got := inodes(t, driverDir) - before; got < 2000 || got > 2600 {
		t.Errorf("%d inodes made under %s for three containers of 2,000 files: want one copy", got, driverDir)
	}
	e.mustKiln("rm", "--all")

	// Killed while making the files: a layer of 20,000 files takes long
	// enough to make that the kill comes half-way.
	dir = smallFilesContext(t, 20000, "FROM localhost/busybox\nCOPY files/ /big/\n")
	e.mustKiln("build", "-q", "-t", "killed", dir)
	c := e.mustKiln("from", "killed")
	before = inodes(t, driverDir)
	cmd := e.command("mount", c)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	must(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	killed := false
	for !killed {
		select {
		case err := <-done:
			t.Fatalf("kiln mount finished (%v) before it was seen making files", err)
		default:
		}
		if inodes(t, driverDir) > before+200 {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			killed = true
		}
		time.Sleep(time.Millisecond)
	}
	if err := <-done; err == nil {
		t.Log("kiln mount finished as it was killed")
	}
	if out, errOut, code := e.kiln("storage", "check"); code != 0 {
		t.Errorf("check after a kill while making files: exit %d: %s%s", code, out, errOut)
	}
	mp := e.mustKiln("mount", c)
	n := 0
	must(t, filepath.WalkDir(filepath.Join(mp, "big"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return err
	}))
	if n != 20000 {
		t.Errorf("%d files in the container after the killed mount, want 20000", n)
	}
	e.mustKiln("unmount", c)
	if out := e.mustKiln("storage", "check"); !strings.Contains(out, " 0 problems") {
		t.Errorf("check: %s", out)
	}
	if _, blobs := e.layerCounts(); blobs != 0 {
		t.Errorf("%d layers still only blobs after their files were made", blobs)
	}
}
