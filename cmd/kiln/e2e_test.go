package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/internal/testbase"
	"github.com/kiln-build/kiln/internal/testenv"
)

// kilnBin is the binary under test, built once by TestMain.
var kilnBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kiln-e2e-")
	if err != nil {
		panic(err)
	}
	kilnBin = filepath.Join(dir, "kiln")
	// Nothing on the host changes a result: a kiln a test starts reads
	// its own empty storage.conf (env.storageConf), or this one, never
	// /etc/kiln/storage.conf.
	conf := filepath.Join(dir, "storage.conf")
	if err := os.WriteFile(conf, nil, 0o644); err != nil {
		panic(err)
	}
	os.Setenv("KILN_STORAGE_CONF", conf)
	build := exec.Command("go", "build", "-o", kilnBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		panic("building kiln: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	testbase.Cleanup()
	os.RemoveAll(dir)
	os.Exit(code)
}

func requiresRoot(t *testing.T) {
	t.Helper()
	testenv.NeedRoot(t, "kiln mounts overlay snapshots and runs containers")
}

// env is one store in a temp dir and a way to run kiln against it.
type env struct {
	t    *testing.T
	root string
	// conf is the storage.conf kiln reads ($KILN_STORAGE_CONF): the
	// file a test wrote, else ROOT/storage.conf, made empty if missing.
	conf string
}

// storageConf is the storage.conf kiln reads in e, never the host's.
func (e *env) storageConf() string {
	if e.conf == "" {
		e.conf = filepath.Join(e.root, "storage.conf")
		f, err := os.OpenFile(e.conf, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			err = f.Close()
		}
		if err != nil && !errors.Is(err, os.ErrExist) {
			e.t.Fatal(err)
		}
	}
	return e.conf
}

// command is kiln with args in e: its store, its storage.conf.
func (e *env) command(a ...string) *exec.Cmd {
	cmd := exec.Command(kilnBin, e.args(a...)...)
	cmd.Env = append(os.Environ(), "KILN_STORAGE_CONF="+e.storageConf())
	return cmd
}

func newEnv(t *testing.T, driver string) *env {
	requiresRoot(t)
	e := &env{t: t, root: t.TempDir()}
	t.Cleanup(func() { e.kiln("unmount", "--all") })
	if driver != "" {
		e.mustKiln("--storage-driver", driver, "images")
	}
	return e
}

func (e *env) args(a ...string) []string {
	return append([]string{"--root", filepath.Join(e.root, "root"), "--runroot", filepath.Join(e.root, "run")}, a...)
}

// kiln runs kiln and returns stdout, stderr and the exit code.
func (e *env) kiln(a ...string) (string, string, int) {
	e.t.Helper()
	return e.run("", nil, a...)
}

func (e *env) mustKiln(a ...string) string {
	e.t.Helper()
	out, errOut, code := e.kiln(a...)
	if code != 0 {
		e.t.Fatalf("kiln %v: exit %d: %s", a, code, errOut)
	}
	return out
}

// busybox makes localhost/busybox from the host's busybox-static with
// kiln's own verbs, as the README does. A test of what kiln does with an
// image it inherits uses foreignBusybox instead: a layer kiln made can
// always be made again and hides what breaks on one it did not.
func (e *env) busybox() {
	e.t.Helper()
	bb := testenv.NeedBinary(e.t, "busybox")
	c := e.mustKiln("from", "scratch")
	mp := e.mustKiln("mount", c)
	must(e.t, os.MkdirAll(filepath.Join(mp, "bin"), 0o755))
	data, err := os.ReadFile(bb)
	must(e.t, err)
	must(e.t, os.WriteFile(filepath.Join(mp, "bin/busybox"), data, 0o755))
	for _, app := range []string{"sh", "ls", "cat", "echo", "true", "id"} {
		must(e.t, os.Symlink("busybox", filepath.Join(mp, "bin", app)))
	}
	must(e.t, os.MkdirAll(filepath.Join(mp, "etc"), 0o755))
	must(e.t, os.WriteFile(filepath.Join(mp, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"), 0o644))
	must(e.t, os.WriteFile(filepath.Join(mp, "etc/group"), []byte("root:x:0:\napp:x:1000:\nstaff:x:50:\n"), 0o644))
	e.mustKiln("config", "--cmd", "/bin/sh", c)
	e.mustKiln("commit", "--rm", c, "localhost/busybox")
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// files lists the regular files and symlinks under root, relative.
func files(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	must(t, filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	}))
	sort.Strings(out)
	return out
}

// TestBuildahScript runs the script word for word, with make
// install writing a real program into the mount.
func TestBuildahScript(t *testing.T) {
	for _, driver := range []string{"overlay", "vfs"} {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver)
			e.foreignBusybox()
			src := t.TempDir()
			must(t, os.WriteFile(filepath.Join(src, "hello"), []byte("#!/bin/sh\necho \"hello $*\"\n"), 0o755))
			must(t, os.WriteFile(filepath.Join(src, "Makefile"), []byte("install:\n\tinstall -D -m 755 hello $(DESTDIR)/usr/local/bin/hello\n"), 0o644))

			c := e.mustKiln("from", "localhost/busybox")
			if c != "busybox-working-container" {
				t.Errorf("from printed %q, want busybox-working-container", c)
			}
			mp := e.mustKiln("mount", c)
			e.mustKiln("config", "--label", "maintainer=A <a@example.com>", c)
			mk := exec.Command("make", "-C", src, "install", "DESTDIR="+mp)
			if out, err := mk.CombinedOutput(); err != nil {
				t.Fatalf("make install: %v\n%s", err, out)
			}
			out, err := exec.Command("chroot", mp, "/bin/sh", "-c", "/usr/local/bin/hello -v").CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "hello -v" {
				t.Fatalf("chroot run: %v %q", err, out)
			}
			e.mustKiln("config", "--entrypoint", "/usr/local/bin/hello", c)
			e.mustKiln("commit", "--format", "docker", c, "hello")
			e.mustKiln("unmount", c)
			e.mustKiln("rm", c)

			if got := e.mustKiln("images", "--format", "{{.Name}}:{{.Tag}}"); !strings.Contains(got, "localhost/hello:latest") {
				t.Errorf("images does not list hello:\n%s", got)
			}
			c2 := e.mustKiln("from", "hello")
			mp2 := e.mustKiln("mount", c2)
			want := []string{"bin/busybox", "bin/cat", "bin/echo", "bin/id", "bin/ls", "bin/sh", "bin/true", "etc/group", "etc/passwd", "usr/local/bin/hello"}
			if diff := cmp.Diff(want, files(t, mp2)); diff != "" {
				t.Errorf("files of a container from hello (-want +got):\n%s", diff)
			}
			got := e.mustKiln("inspect", "--type", "image", "--format", "{{.Docker.Config.Entrypoint}}|{{index .OCIv1.Config.Labels \"maintainer\"}}", "hello")
			if got != "[/bin/sh -c /usr/local/bin/hello]|A <a@example.com>" {
				t.Errorf("inspect = %q", got)
			}
		})
	}
}

// TestCommitTwiceAndKeepWorking commits a mounted container twice.
func TestCommitTwiceAndKeepWorking(t *testing.T) {
	e := newEnv(t, "")
	e.busybox()
	c := e.mustKiln("from", "busybox")
	mp := e.mustKiln("mount", c)
	must(t, os.WriteFile(filepath.Join(mp, "one"), []byte("1"), 0o644))
	id1 := e.mustKiln("commit", c, "first")
	must(t, os.WriteFile(filepath.Join(mp, "two"), []byte("2"), 0o644))
	must(t, os.Remove(filepath.Join(mp, "one")))
	id2 := e.mustKiln("commit", c, "second")
	if id1 == id2 {
		t.Fatal("two different commits gave one image ID")
	}
	check := func(img string, want []string) {
		t.Helper()
		cc := e.mustKiln("from", img)
		p := e.mustKiln("mount", cc)
		var got []string
		for _, n := range []string{"one", "two"} {
			if _, err := os.Stat(filepath.Join(p, n)); err == nil {
				got = append(got, n)
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", img, diff)
		}
		e.mustKiln("rm", cc)
	}
	check("first", []string{"one"})
	check("second", []string{"two"})
	hist := e.mustKiln("inspect", "--type", "image", "--format", "{{len .Docker.History}} {{len .Docker.RootFS.DiffIDs}}", "second")
	if hist != "3 3" {
		t.Errorf("history and layers of second = %q, want \"3 3\"", hist)
	}
}

// TestReproducibleCommit: the same content and --timestamp give one ID.
func TestReproducibleCommit(t *testing.T) {
	e := newEnv(t, "")
	e.busybox()
	var ids []string
	for i := 0; i < 2; i++ {
		c := e.mustKiln("from", "busybox")
		mp := e.mustKiln("mount", c)
		must(t, os.WriteFile(filepath.Join(mp, "f"), []byte("same"), 0o644))
		ids = append(ids, e.mustKiln("commit", "--timestamp", "1700000000", "--rm", c))
	}
	if ids[0] != ids[1] {
		t.Errorf("commits with --timestamp differ: %s vs %s", ids[0], ids[1])
	}
}

func tarGz(t *testing.T, files map[string]string) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, body := range files {
		must(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}))
		_, err := tw.Write([]byte(body))
		must(t, err)
	}
	must(t, tw.Close())
	must(t, zw.Close())
	return buf.Bytes()
}

func TestCopyAndAdd(t *testing.T) {
	e := newEnv(t, "")
	e.foreignBusybox()
	src := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(src, "dir/sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "dir/sub/a.txt"), []byte("A"), 0o644))
	must(t, os.WriteFile(filepath.Join(src, "x.conf"), []byte("X"), 0o600))
	must(t, os.WriteFile(filepath.Join(src, "y.conf"), []byte("Y"), 0o600))
	must(t, os.WriteFile(filepath.Join(src, "arch.tar.gz"), tarGz(t, map[string]string{"from-tar": "T"}), 0o644))
	hostDir := t.TempDir()

	c := e.mustKiln("from", "busybox")
	mp := e.mustKiln("mount", c)
	must(t, os.Symlink(hostDir, filepath.Join(mp, "evil")))
	e.mustKiln("copy", "--contextdir", src, c, "dir", "/opt/")
	e.mustKiln("copy", "--contextdir", src, "--chown", "app:staff", "--chmod", "640", c, "*.conf", "/etc/app/")
	e.mustKiln("add", "--contextdir", src, c, "arch.tar.gz", "/srv/")
	e.mustKiln("copy", "--contextdir", src, c, "x.conf", "/evil/x.conf")

	if b, err := os.ReadFile(filepath.Join(mp, "opt/sub/a.txt")); err != nil || string(b) != "A" {
		t.Errorf("directory contents not copied: %v %q", err, b)
	}
	for _, n := range []string{"x.conf", "y.conf"} {
		fi, err := os.Stat(filepath.Join(mp, "etc/app", n))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != 0o640 || st.Uid != 1000 || st.Gid != 50 {
			t.Errorf("%s: mode %v owner %d:%d, want 0640 1000:50", n, fi.Mode().Perm(), st.Uid, st.Gid)
		}
	}
	if b, err := os.ReadFile(filepath.Join(mp, "srv/from-tar")); err != nil || string(b) != "T" {
		t.Errorf("add did not extract the archive: %v", err)
	}
	if entries, _ := os.ReadDir(hostDir); len(entries) != 0 {
		t.Errorf("a copy through a symlink in the container wrote to the host: %v", entries)
	}
	if _, err := os.Stat(filepath.Join(mp, hostDir, "x.conf")); err != nil {
		t.Errorf("copy through the symlink did not land inside the rootfs: %v", err)
	}
}

// TestBadInput: each mistake exits 125 with a one-line error naming the
// thing (rmi's in Buildah's list form, "1 error occurred:" then the
// line), and leaves the store unchanged.
func TestBadInput(t *testing.T) {
	e := newEnv(t, "")
	e.busybox()
	c := e.mustKiln("from", "busybox")
	before := e.mustKiln("images", "-q") + "|" + e.mustKiln("containers", "-q")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"from", "nosuchimage"}, "nosuchimage"},
		{[]string{"from", "Bad/Name"}, "must be lowercase"},
		{[]string{"mount", "nosuchctr"}, "nosuchctr"},
		{[]string{"images", "--format", "{{.Nope"}, "template"},
		{[]string{"config", "--entrypoint", "[\"/bin/sh\"", c}, "entrypoint"},
		{[]string{"copy", c, "/nonexistent/file", "/"}, "/nonexistent/file"},
		{[]string{"copy", "--chown", "ghost", c, "/etc/hostname", "/"}, "ghost"},
		{[]string{"commit", "--format", "tarball", c}, "tarball"},
		{[]string{"rmi", "busybox"}, "in use"},
		{[]string{"--storage-driver", "devicemapper", "images"}, "removed upstream"},
	}
	for _, tt := range tests {
		_, errOut, code := e.kiln(tt.args...)
		if code != 125 {
			t.Errorf("kiln %v: exit %d, want 125", tt.args, code)
		}
		lines := strings.Count(errOut, "\n")
		if tt.args[0] == "rmi" && strings.HasPrefix(errOut, "Error: 1 error occurred:\n\t* ") {
			lines = strings.Count(strings.TrimRight(errOut, "\n"), "\n") - 1
		}
		if !strings.Contains(errOut, tt.want) || lines > 0 {
			t.Errorf("kiln %v: error %q should be one line naming %q", tt.args, errOut, tt.want)
		}
	}
	if after := e.mustKiln("images", "-q") + "|" + e.mustKiln("containers", "-q"); after != before {
		t.Errorf("bad input changed the store: %q -> %q", before, after)
	}
}

func TestImageVerbs(t *testing.T) {
	e := newEnv(t, "")
	e.busybox()
	e.mustKiln("tag", "busybox", "other:v1")
	if got := e.mustKiln("images", "--noheading", "--format", "{{.Name}}:{{.Tag}}"); got != "localhost/busybox:latest\nlocalhost/other:v1" {
		t.Errorf("images after tag:\n%s", got)
	}
	c := e.mustKiln("from", "--name", "work", "other:v1")
	e.mustKiln("rename", c, "work2")
	if got := e.mustKiln("containers", "--format", "{{.ContainerName}}"); got != "work2" {
		t.Errorf("containers = %q", got)
	}
	if _, _, code := e.kiln("rmi", "other:v1"); code != 0 {
		t.Error("rmi of one of two names should untag")
	}
	e.mustKiln("rmi", "--force", "busybox")
	if got := e.mustKiln("images", "-q") + e.mustKiln("containers", "-q"); got != "" {
		t.Errorf("store not empty after rmi --force: %q", got)
	}
}

// TestIndependentReaders: umoci and skopeo read what kiln pushes to oci:.
func TestIndependentReaders(t *testing.T) {
	e := newEnv(t, "")
	for _, tool := range []string{"umoci", "skopeo"} {
		testenv.NeedBinary(t, tool)
	}
	e.foreignBusybox()
	c := e.mustKiln("from", "busybox")
	mp := e.mustKiln("mount", c)
	must(t, os.WriteFile(filepath.Join(mp, "marker"), []byte("kiln"), 0o644))
	e.mustKiln("config", "--label", "made-by=kiln", c)
	e.mustKiln("commit", c, "marked")
	layout := filepath.Join(t.TempDir(), "layout")
	e.mustKiln("push", "marked", "oci:"+layout+":v1")
	bundle := filepath.Join(t.TempDir(), "bundle")
	if out, err := exec.Command("umoci", "unpack", "--image", layout+":v1", bundle).CombinedOutput(); err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(bundle, "rootfs/marker")); err != nil || string(b) != "kiln" {
		t.Errorf("umoci's rootfs lacks the marker: %v", err)
	}
	out, err := exec.Command("skopeo", "inspect", "oci:"+layout+":v1").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"made-by": "kiln"`) {
		t.Errorf("skopeo inspect: %v\n%s", err, out)
	}
}

// TestRun runs commands in a working container with both isolations:
// exit status, the image's env and workdir, 127 for a missing command,
// and no mount left behind.
func TestRun(t *testing.T) {
	e := newEnv(t, "")
	e.busybox()
	c := e.mustKiln("from", "busybox")
	e.mustKiln("config", "--env", "GREETING=hi", "--workingdir", "/work", c)
	isolations := []string{"chroot"}
	if _, err := exec.LookPath("runc"); err == nil {
		isolations = append(isolations, "oci")
	}
	mountsBefore, _ := os.ReadFile("/proc/self/mountinfo")
	for _, iso := range isolations {
		t.Run(iso, func(t *testing.T) {
			out := e.mustKiln("run", "--isolation", iso, c, "--", "sh", "-c", "echo $GREETING; pwd")
			if out != "hi\n/work" {
				t.Errorf("output = %q, want \"hi\\n/work\"", out)
			}
			if _, _, code := e.kiln("run", "--isolation", iso, c, "--", "sh", "-c", "exit 7"); code != 7 {
				t.Errorf("exit status = %d, want 7", code)
			}
			if _, errOut, code := e.kiln("run", "--isolation", iso, c, "--", "nosuchcmd"); code != 127 || !strings.Contains(errOut, "nosuchcmd") {
				t.Errorf("missing command: exit %d (%s), want 127", code, errOut)
			}
		})
	}
	mountsAfter, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Count(string(mountsAfter), e.root) != strings.Count(string(mountsBefore), e.root) {
		t.Errorf("run left mounts behind:\n%s", mountsAfter)
	}
	e.mustKiln("rm", c)
}
