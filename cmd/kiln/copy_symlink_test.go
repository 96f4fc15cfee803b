package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCopyDirOntoSymlink: copying a directory onto a container path that
// is an absolute symlink follows it inside the container's root: the
// host directory of the same name keeps its mode and times.
func TestCopyDirOntoSymlink(t *testing.T) {
	e := newEnv(t, "")
	e.busybox()
	host := t.TempDir() // stands for the host's /etc
	must(t, os.Chmod(host, 0o755))
	old := time.Unix(1500000000, 0)
	must(t, os.Chtimes(host, old, old))
	src := t.TempDir()
	must(t, os.Chmod(src, 0o700))
	must(t, os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644))

	c := e.mustKiln("from", "localhost/busybox")
	mp := e.mustKiln("mount", c)
	must(t, os.MkdirAll(filepath.Join(mp, "x"), 0o755))
	must(t, os.Symlink(host, filepath.Join(mp, "x/t")))
	e.mustKiln("copy", c, src, "/x/t")

	fi, err := os.Stat(host)
	must(t, err)
	if fi.Mode().Perm() != 0o755 || !fi.ModTime().Equal(old) {
		t.Errorf("host directory changed: mode %o, mtime %v", fi.Mode().Perm(), fi.ModTime())
	}
	if _, err := os.Stat(filepath.Join(host, "f")); err == nil {
		t.Error("the copy wrote into the host directory")
	}
	if _, err := os.Stat(filepath.Join(mp, host, "f")); err != nil {
		t.Errorf("the copy did not land inside the container at the link's target: %v", err)
	}
}

// TestCopyKeepsSetID: copy keeps set-user-ID, set-group-ID and sticky
// bits (chown, which clears set-id bits, comes before chmod), also with
// --chown.
func TestCopyKeepsSetID(t *testing.T) {
	e := newEnv(t, "")
	e.busybox()
	src := t.TempDir()
	files := map[string]os.FileMode{"suid": os.ModeSetuid | 0o755, "sgid": os.ModeSetgid | 0o755}
	for name, mode := range files {
		p := filepath.Join(src, name)
		must(t, os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755))
		must(t, os.Chmod(p, mode))
	}
	must(t, os.Mkdir(filepath.Join(src, "sticky"), 0o755))
	must(t, os.Chmod(filepath.Join(src, "sticky"), os.ModeSticky|0o777))
	c := e.mustKiln("from", "localhost/busybox")
	e.mustKiln("copy", "--chown", "app:app", c, src, "/opt/")
	mp := e.mustKiln("mount", c)
	for name, mode := range map[string]os.FileMode{"suid": os.ModeSetuid | 0o755, "sgid": os.ModeSetgid | 0o755, "sticky": os.ModeDir | os.ModeSticky | 0o777} {
		fi, err := os.Lstat(filepath.Join(mp, "opt", name))
		must(t, err)
		if got := fi.Mode() & (os.ModeType | os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky); got != mode {
			t.Errorf("/opt/%s mode = %v, want %v", name, got, mode)
		}
	}
}

// TestCopyFrom: copy --from another working container or an image takes
// the source inside that root (ownership kept), never from the host.
func TestCopyFrom(t *testing.T) {
	e := newEnv(t, "")
	e.busybox()
	src := e.mustKiln("from", "--name", "src", "localhost/busybox")
	smp := e.mustKiln("mount", src)
	must(t, os.MkdirAll(filepath.Join(smp, "out"), 0o755))
	must(t, os.WriteFile(filepath.Join(smp, "out/artifact"), []byte("built\n"), 0o640))
	must(t, os.Lchown(filepath.Join(smp, "out/artifact"), 1000, 1000))
	dst := e.mustKiln("from", "localhost/busybox")
	e.mustKiln("copy", "--from", "src", dst, "/out/artifact", "/app/")
	e.mustKiln("copy", "--from", "localhost/busybox", dst, "/etc/passwd", "/app/passwd-from-image")
	mp := e.mustKiln("mount", dst)
	fi, err := os.Stat(filepath.Join(mp, "app/artifact"))
	must(t, err)
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1000 || fi.Mode().Perm() != 0o640 {
		t.Errorf("artifact: uid %d mode %o, want 1000 and 640 kept", st.Uid, fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(filepath.Join(mp, "app/passwd-from-image")); !strings.Contains(string(b), "app:x:1000") {
		t.Errorf("passwd from the image = %q", b)
	}
	if _, _, code := e.kiln("copy", "--from", "no-such-thing", dst, "/x", "/"); code != 125 {
		t.Errorf("--from a missing container or image: exit %d, want 125", code)
	}
}
