package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
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

// TestContainersFormatWholeIDs: `containers --format` gets whole IDs, as
// Buildah's (only its table truncates them), so that a script compares
// them with commit's .Docker.Container and inspect's ContainerID.
func TestContainersFormatWholeIDs(t *testing.T) {
	e := newEnv(t, "vfs")
	e.busybox()
	c := e.mustKiln("from", "-q", "localhost/busybox")
	id := e.mustKiln("inspect", "--format", "{{.ContainerID}}", c)
	if len(id) != 64 {
		t.Fatalf("inspect ContainerID = %q", id)
	}
	if got := e.mustKiln("containers", "--format", "{{.ContainerID}}"); got != id {
		t.Errorf("containers --format {{.ContainerID}} = %q, want %q", got, id)
	}
	if got := e.mustKiln("containers", "--noheading"); !strings.HasPrefix(got, id[:12]+" ") && !strings.HasPrefix(got, id[:12]+"\t") {
		t.Errorf("containers table row = %q, want it to start with the short ID %s", got, id[:12])
	}
	e.mustKiln("commit", "-q", "--format", "docker", c, "localhost/committed")
	if got := e.mustKiln("inspect", "--type", "image", "--format", "{{.Docker.Container}}", "localhost/committed"); got != id {
		t.Errorf(".Docker.Container = %q, want the container's ID %q", got, id)
	}
}

// TestCopySymlinkSource: a source given on the command line that is a
// symlink is followed, as Buildah does: a link to a file copies the
// file's content under the link's name (also one named like an archive,
// which copy does not unpack), a link to a directory copies the
// directory's content.
func TestCopySymlinkSource(t *testing.T) {
	e := newEnv(t, "vfs")
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "randomfile"), []byte("random content"), 0o644))
	must(t, os.Symlink(filepath.Join(dir, "randomfile"), filepath.Join(dir, "link-randomfile")))
	must(t, os.Symlink(filepath.Join(dir, "randomfile"), filepath.Join(dir, "link-randomfile.tar.gz")))
	must(t, os.Mkdir(filepath.Join(dir, "d"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "d", "inner"), []byte("inner"), 0o644))
	must(t, os.Symlink("d", filepath.Join(dir, "link-d")))

	c := e.mustKiln("from", "scratch")
	e.mustKiln("config", "--workingdir", "/", c)
	e.mustKiln("copy", c, filepath.Join(dir, "link-randomfile"))
	e.mustKiln("copy", c, filepath.Join(dir, "link-randomfile.tar.gz"))
	e.mustKiln("copy", c, filepath.Join(dir, "link-d"), "/linked-dir")
	e.mustKiln("commit", "-q", c, "localhost/new-image")
	n := e.mustKiln("from", "-q", "localhost/new-image")
	root := e.mustKiln("mount", n)
	for path, want := range map[string]string{
		"link-randomfile": "random content", "link-randomfile.tar.gz": "random content", "linked-dir/inner": "inner",
	} {
		fi, err := os.Lstat(filepath.Join(root, path))
		if err != nil || !fi.Mode().IsRegular() {
			t.Errorf("/%s: %v, %v; want a regular file", path, fi, err)
			continue
		}
		if got, _ := os.ReadFile(filepath.Join(root, path)); string(got) != want {
			t.Errorf("/%s = %q, want %q", path, got, want)
		}
	}
}

// TestBuildahShorthandsAndWords: config takes Buildah's -u (--user) and
// -a (--annotation); run without a command says Buildah's "command must
// be specified" (exit 125), whatever the image's entrypoint and cmd; run
// --user of a user the image lacks says "unknown user error".
func TestBuildahShorthandsAndWords(t *testing.T) {
	e := newEnv(t, "vfs")
	e.busybox()
	c := e.mustKiln("from", "-q", "localhost/busybox")
	e.mustKiln("config", "-u", "app", "-a", "note=yes", c)
	if got := e.mustKiln("inspect", "--format", `{{.Config.Config.User}} {{index .ImageAnnotations "note"}}`, c); got != "app yes" {
		t.Errorf("config -u app -a note=yes: user and annotation %q", got)
	}
	e.mustKiln("config", "-u", "", "--entrypoint", "/bin/echo", c)
	for _, args := range [][]string{{"run", c}, {"run", c, "--"}} {
		if _, errOut, code := e.kiln(args...); code != 125 || !strings.Contains(errOut, "command must be specified") {
			t.Errorf("kiln %v: exit %d, %q", args, code, errOut)
		}
	}
	if _, errOut, code := e.kiln("run", "--user", "noexist", c, "true"); code != 125 || !strings.Contains(errOut, `unknown user error looking up user "noexist"`) {
		t.Errorf("run --user noexist: exit %d, %q", code, errOut)
	}
}

// TestFullDiskWords: a store on a filesystem with no room left fails
// (exit 125) saying "no space left on device", as Buildah does, also when
// what failed first is the store's database ("database or disk is
// full").
func TestFullDiskWords(t *testing.T) {
	requiresRoot(t)
	dir := t.TempDir()
	must(t, unix.Mount("tmpfs", dir, "tmpfs", 0, "size=2m"))
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	f, err := os.Create(filepath.Join(dir, "full"))
	must(t, err)
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	f.Close()
	e := &env{t: t, root: t.TempDir()}
	_, errOut, code := e.kiln("--root", filepath.Join(dir, "root"), "images")
	if code != 125 || !strings.Contains(errOut, "no space left on device") {
		t.Errorf("kiln on a full filesystem: exit %d, %q", code, errOut)
	}
}

// TestRunHostsNamesContainer: the generated /etc/hosts gives the
// hostname's address the working container's name too, as Buildah's does
// (its from-image-by-id test looks for ID-working-container there).
func TestRunHostsNamesContainer(t *testing.T) {
	e := newEnv(t, "vfs")
	e.busybox()
	c := e.mustKiln("from", "-q", "localhost/busybox")
	id := e.mustKiln("inspect", "--format", "{{.ContainerID}}", c)
	hosts := e.mustKiln("run", c, "cat", "/etc/hosts")
	if want := "127.0.1.1\t" + id[:12] + " " + c; !strings.Contains(hosts, want) {
		t.Errorf("/etc/hosts = %q, want a line %q", hosts, want)
	}
}
