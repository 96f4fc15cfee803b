package main

import (
	"strings"
	"testing"
)

// TestIsolationFromEnvironment: BUILDAH_ISOLATION is the default of from
// and run --isolation, as in Buildah (build already read it): from
// records it for the container's later runs, and run, given no
// --isolation and a container that recorded none, uses it.
func TestIsolationFromEnvironment(t *testing.T) {
	e := newEnv(t, "vfs")
	e.busybox()
	c := e.mustRun("", []string{"BUILDAH_ISOLATION=chroot"}, "from", "-q", "localhost/busybox")
	if got := e.mustKiln("inspect", "--format", "{{.Isolation}}", c); got != "chroot" {
		t.Errorf("from with BUILDAH_ISOLATION=chroot recorded isolation %q, want chroot", got)
	}
	plain := e.mustKiln("from", "-q", "localhost/busybox")
	_, errOut, code := e.run("", []string{"BUILDAH_ISOLATION=bogus"}, "run", plain, "true")
	if code != 125 || !strings.Contains(errOut, `"bogus"`) {
		t.Errorf("run with BUILDAH_ISOLATION=bogus: exit %d, %q; want 125 naming the isolation", code, errOut)
	}
	// The container's own isolation comes before the environment's.
	if out, errOut, code := e.run("", []string{"BUILDAH_ISOLATION=bogus"}, "run", c, "echo", "ok"); code != 0 || out != "ok" {
		t.Errorf("run of a chroot container with BUILDAH_ISOLATION=bogus: exit %d, %q, %q", code, out, errOut)
	}
}
