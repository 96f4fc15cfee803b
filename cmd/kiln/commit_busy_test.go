package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestCommitWithShellInMount: a shell sitting in the mount point (as in
// `cd $mp` in a build script) does not stop `kiln commit`, and the
// container keeps working for the next commit.
func TestCommitWithShellInMount(t *testing.T) {
	e := newEnv(t, "")
	e.busybox()
	c := e.mustKiln("from", "localhost/busybox")
	mp := e.mustKiln("mount", c)
	must(t, os.WriteFile(filepath.Join(mp, "made-in-shell"), []byte("x"), 0o644))
	sh := exec.Command("sleep", "60")
	sh.Dir = mp
	must(t, sh.Start())
	defer func() { _ = sh.Process.Kill(); _ = sh.Wait() }()
	e.mustKiln("commit", "-q", c, "first")
	must(t, os.WriteFile(filepath.Join(mp, "second"), []byte("y"), 0o644))
	e.mustKiln("commit", "-q", c, "second")
	v := e.mustKiln("from", "second")
	if got := e.mustKiln("run", v, "--", "ls", "/made-in-shell", "/second"); got != "/made-in-shell\n/second" {
		t.Errorf("files of the second image: %q", got)
	}
}
