package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDeepImages: a working container committed 200 times, and a build
// of 300 layer-making steps, each on a store whose root path is long
// (the old limit was one page of overlay mount options: about 60 layers
// under such a root, 93 in a build). Both still mount, run and commit.
// Past overlay's 500 layers the error is the driver's (TestDeepChains in
// the overlay driver).
func TestDeepImages(t *testing.T) {
	requiresRoot(t)
	t.Parallel()
	e := newEnv(t, "")
	e.root = filepath.Join(e.root, strings.Repeat("a-long-store-root-", 8))
	must(t, os.MkdirAll(e.root, 0o755))
	e.foreignBusybox()
	t.Run("200 commits", func(t *testing.T) {
		e := e.in(t)
		c := e.mustKiln("from", "localhost/busybox")
		// A commit remounts the container at the same path.
		mp := e.mustKiln("mount", c)
		for i := range 200 {
			must(t, os.WriteFile(filepath.Join(mp, "c"+strconv.Itoa(i)), []byte(strconv.Itoa(i)), 0o644))
			e.mustKiln("commit", "-q", c, "localhost/deep")
		}
		if got := e.mustKiln("run", c, "--", "sh", "-c", "ls / | grep -c '^c[0-9]'"); got != "200" {
			t.Errorf("files of 200 commits seen by run: %s", got)
		}
		d := e.mustKiln("from", "localhost/deep")
		if got := e.mustKiln("run", d, "--", "cat", "/c199"); got != "199" {
			t.Errorf("the last commit's file: %q", got)
		}
	})
	t.Run("300-step build", func(t *testing.T) {
		e := e.in(t)
		dir := t.TempDir()
		var df strings.Builder
		df.WriteString("FROM localhost/busybox\n")
		for i := range 300 {
			f := fmt.Sprintf("f%03d", i)
			must(t, os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644))
			fmt.Fprintf(&df, "COPY %s /deep/\n", f)
		}
		df.WriteString("RUN ls /deep | wc -l > /count\n")
		must(t, os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df.String()), 0o644))
		e.mustKiln("build", "-q", "-t", "localhost/deep-build", dir)
		c := e.mustKiln("from", "localhost/deep-build")
		if got := e.mustKiln("run", c, "--", "cat", "/count"); got != "300" {
			t.Errorf("files the 301st step saw: %q", got)
		}
	})
}
