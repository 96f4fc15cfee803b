package main

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestExportWhileCommitting: `kiln storage export` by hand while another
// kiln process runs and commits a working container in a loop. Every
// commit succeeds (writers wait for the export instead of failing), and
// the export is one point in time: imported into a fresh store, the
// container holds files f1..fK with no gap (no write was lost between
// the container and the layer it was committed into), and every exported
// image stepJ holds f1..fJ.
func TestExportWhileCommitting(t *testing.T) {
	e := newEnv(t, "")
	e.busybox()
	c := e.mustKiln("from", "--name", "writer", "localhost/busybox")
	mp := e.mustKiln("mount", c)
	big := make([]byte, 48<<20) // makes each export take a while
	_, _ = rand.Read(big)
	must(t, os.WriteFile(filepath.Join(mp, "big"), big, 0o644))
	e.mustKiln("unmount", c)

	const steps = 8
	errs := make(chan string, 2*steps)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= steps; i++ {
			if _, errOut, code := e.kiln("run", c, "--", "/bin/busybox", "sh", "-c", fmt.Sprintf("echo %d > /f%d", i, i)); code != 0 {
				errs <- fmt.Sprintf("run %d: %s", i, errOut)
			}
			if _, errOut, code := e.kiln("commit", c, fmt.Sprintf("localhost/step%d", i)); code != 0 {
				errs <- fmt.Sprintf("commit %d: %s", i, errOut)
			}
		}
	}()
	exp := filepath.Join(t.TempDir(), "export")
	start := time.Now()
	exports := 0
	for running := true; running; exports++ {
		e.mustKiln("storage", "export", "-q", "--dir", exp)
		select {
		case <-done:
			running = false
		default:
		}
	}
	t.Logf("%d exports in %s while %d runs and commits went on", exports, time.Since(start).Round(time.Millisecond), steps)
	close(errs)
	for msg := range errs {
		t.Errorf("a writer failed during the exports: %s", msg)
	}

	imp := newEnv(t, "")
	t0 := time.Now()
	imp.mustKiln("storage", "import", "--no-mount", "--dir", exp)
	t.Logf("import took %s", time.Since(t0).Round(time.Millisecond))
	want := func(n int) []string {
		var w []string
		for i := 1; i <= n; i++ {
			w = append(w, fmt.Sprintf("f%d", i))
		}
		sort.Strings(w)
		return w
	}
	got := writtenFiles(t, imp, "writer")
	if len(got) == 0 || strings.Join(got, ",") != strings.Join(want(len(got)), ",") {
		t.Errorf("exported container holds %v, want f1..fK without a gap", got)
	}
	images := imp.mustKiln("images")
	checked := 0
	for j := 1; j <= len(got); j++ {
		name := fmt.Sprintf("localhost/step%d", j)
		if !strings.Contains(images, name+" ") {
			continue // committed after the last export
		}
		ctr := imp.mustKiln("from", name)
		if files := writtenFiles(t, imp, ctr); strings.Join(files, ",") != strings.Join(want(j), ",") {
			t.Errorf("exported image %s holds %v, want %v", name, files, want(j))
		}
		imp.mustKiln("rm", ctr)
		checked++
	}
	if checked == 0 {
		t.Errorf("no committed image was in the export; images:\n%s", images)
	}
}

// writtenFiles lists the /f* files of a container.
func writtenFiles(t *testing.T, e *env, c string) []string {
	t.Helper()
	mp := e.mustKiln("mount", c)
	defer e.mustKiln("unmount", c)
	m, err := filepath.Glob(filepath.Join(mp, "f*"))
	must(t, err)
	var out []string
	for _, p := range m {
		out = append(out, filepath.Base(p))
	}
	sort.Strings(out)
	return out
}
