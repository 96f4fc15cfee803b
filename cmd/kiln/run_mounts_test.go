package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestRunMountFromImageAndCache: run --mount type=bind,from=IMAGE binds a
// path of a local image (read-only unless rw, as Buildah; the image is
// untouched and no temporary container stays), and type=cache binds a
// directory of the store that later runs (and builds) see again, as in
// Buildah's run.bats.
func TestRunMountFromImageAndCache(t *testing.T) {
	e := newEnv(t, "vfs")
	e.busybox()
	src := e.mustKiln("from", "localhost/busybox")
	mp := e.mustKiln("mount", src)
	must(t, os.MkdirAll(filepath.Join(mp, "data"), 0o755))
	must(t, os.WriteFile(filepath.Join(mp, "data/hello"), []byte("hello\n"), 0o644))
	e.mustKiln("commit", "--rm", src, "localhost/withhello")
	c := e.mustKiln("from", "localhost/busybox")
	for _, iso := range runIsolations(t) {
		from := "type=bind,source=.,from=localhost/withhello,target=/test,z"
		if out := e.mustKiln("run", "--isolation", iso, "--mount", from, c, "cat", "/test/data/hello"); out != "hello" {
			t.Errorf("%s: cat of the image's file = %q, want hello", iso, out)
		}
		sub := "type=bind,src=/data,from=localhost/withhello,dst=/sub"
		if _, _, code := e.kiln("run", "--isolation", iso, "--mount", sub, c, "sh", "-c", "echo x > /sub/new"); code == 0 {
			t.Errorf("%s: a bind from an image without rw was writable", iso)
		}
		e.mustKiln("run", "--isolation", iso, "--mount", sub+",rw", c, "sh", "-c", "echo x > /sub/new")
		e.mustKiln("run", "--isolation", iso, "--mount", "type=cache,target=/cache,z", c, "sh", "-c", "echo "+iso+" > /cache/"+iso)
		if out := e.mustKiln("run", "--isolation", iso, "--mount", "type=cache,target=/cache", c, "cat", "/cache/"+iso); out != iso {
			t.Errorf("%s: the cache's file in a later run = %q", iso, out)
		}
		// A cache is its id's: another target with the same id sees it.
		e.mustKiln("run", "--isolation", iso, "--mount", "type=cache,id=shared,target=/a", c, "sh", "-c", "echo same > /a/f")
		if out := e.mustKiln("run", "--isolation", iso, "--mount", "type=cache,id=shared,target=/b,sharing=locked", c, "cat", "/b/f"); out != "same" {
			t.Errorf("%s: cache id=shared at another target = %q", iso, out)
		}
	}
	check := e.mustKiln("from", "localhost/withhello")
	cmp := e.mustKiln("mount", check)
	if _, err := os.Stat(filepath.Join(cmp, "data/new")); err == nil {
		t.Error("a rw bind from the image wrote into the image")
	}
	if out := e.mustKiln("containers", "--format", "{{.ContainerName}}"); strings.Contains(out, "kiln-mount-from") {
		t.Errorf("temporary containers left:\n%s", out)
	}
	if _, errOut, code := e.kiln("run", "--mount", "type=bind,from=localhost/nosuchimage,target=/x", c, "true"); code != 125 || !strings.Contains(errOut, "nosuchimage") {
		t.Errorf("from an unknown image: exit %d, %q; want 125 naming it", code, errOut)
	}
	if _, errOut, code := e.kiln("run", "--mount", "type=cache,from=stage,target=/x", c, "true"); code != 125 || !strings.Contains(errOut, "no stage found with name stage") {
		t.Errorf("cache from a stage: exit %d, %q; want Buildah's 'no stage found'", code, errOut)
	}
}

// TestRunTerminalAndLimits: --terminal=true gives the command a pty
// though kiln's stdin is none (ls colours its output), without the flag
// a pty only when kiln's stdio are terminals; the open-files limit is
// Buildah's 1024:1024 unless from --ulimit set another.
func TestRunTerminalAndLimits(t *testing.T) {
	e := newEnv(t, "vfs")
	e.busybox()
	c := e.mustKiln("from", "localhost/busybox")
	limited := e.mustKiln("from", "--ulimit", "nofile=300:400", "localhost/busybox")
	nofile := regexp.MustCompile(`Max open files +(\d+) +(\d+)`)
	for _, iso := range runIsolations(t) {
		colored := e.mustKiln("run", "--isolation", iso, "--terminal=true", c, "ls", "--color=auto", "/")
		plain := e.mustKiln("run", "--isolation", iso, "--terminal=false", c, "ls", "--color=auto", "/")
		byDefault := e.mustKiln("run", "--isolation", iso, c, "ls", "--color=auto", "/")
		if !strings.Contains(colored, "\x1b[") || strings.Contains(plain, "\x1b[") || byDefault != plain {
			t.Errorf("%s: ls --color=auto with --terminal=true %q, false %q, default %q", iso, colored, plain, byDefault)
		}
		if out := e.mustRun("line\n", nil, "run", "--isolation", iso, "-t", c, "sh", "-c", "read x; echo got-$x"); !strings.HasSuffix(out, "got-line") {
			t.Errorf("%s: -t with piped input: %q", iso, out)
		}
		for ctr, want := range map[string]string{c: "1024 1024", limited: "300 400"} {
			m := nofile.FindStringSubmatch(e.mustKiln("run", "--isolation", iso, ctr, "cat", "/proc/self/limits"))
			if m == nil || m[1]+" "+m[2] != want {
				t.Errorf("%s: open files limit %v, want %s", iso, m, want)
			}
		}
	}
}
