package main

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/internal/idmap"
	"github.com/kiln-build/kiln/internal/testbase"
	"github.com/kiln-build/kiln/internal/testenv"
)

// These tests run kiln as an ordinary user (scripts/rootless-users.sh
// makes kiln-rootless, with subordinate ranges, and kiln-norange,
// without), through setpriv, with the user's default store
// (~/.local/share/kiln, run root $XDG_RUNTIME_DIR/kiln) in a home of the
// test's own, on bases other tools made; what it makes is read back by
// root-run tools (skopeo, umoci) and compared with what root kiln makes.

const (
	rootlessUser = "kiln-rootless"
	norangeUser  = "kiln-norange"
)

// rootless is kiln run as a user, in a directory the user owns: home/
// (with an empty ~/.config/kiln/storage.conf, so the host's
// /etc/kiln/storage.conf changes nothing), run/ ($XDG_RUNTIME_DIR) and
// a copy of the kiln under test.
type rootless struct {
	t        *testing.T
	name     string
	uid, gid int
	dir      string
	kilnPath string
	// path is $PATH for kiln: the usual one unless a test narrows it.
	path string
}

func newRootless(t *testing.T, name string) *rootless {
	t.Helper()
	requiresRoot(t)
	testenv.NeedBinary(t, "setpriv")
	testenv.NeedBinary(t, "newuidmap")
	u, err := user.Lookup(name)
	if err != nil {
		testenv.Unavailable(t, "user %s does not exist (scripts/rootless-users.sh makes it): %v", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, err := os.MkdirTemp("", "kiln-rootless-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	r := &rootless{t: t, name: name, uid: uid, gid: gid, dir: dir, kilnPath: filepath.Join(dir, "kiln"),
		path: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	bin, err := os.ReadFile(kilnBin)
	must(t, err)
	must(t, os.WriteFile(r.kilnPath, bin, 0o755))
	must(t, os.MkdirAll(filepath.Join(r.home(), ".config", "kiln"), 0o755))
	must(t, os.WriteFile(filepath.Join(r.home(), ".config", "kiln", "storage.conf"), nil, 0o644))
	must(t, os.Mkdir(r.runtimeDir(), 0o700))
	r.chown(dir)
	return r
}

func (r *rootless) home() string       { return filepath.Join(r.dir, "home") }
func (r *rootless) runtimeDir() string { return filepath.Join(r.dir, "run") }

// storeRoot is the user's default store.
func (r *rootless) storeRoot() string { return filepath.Join(r.home(), ".local", "share", "kiln") }

// chown gives the user everything under path.
func (r *rootless) chown(path string) {
	r.t.Helper()
	must(r.t, filepath.WalkDir(path, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, r.uid, r.gid)
	}))
}

// file writes a file the user owns in its directory and returns its path.
func (r *rootless) file(name, body string) string {
	r.t.Helper()
	p := filepath.Join(r.dir, name)
	must(r.t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(r.t, os.WriteFile(p, []byte(body), 0o644))
	r.chown(filepath.Dir(p))
	return p
}

// command is kiln with args, run as the user.
func (r *rootless) command(args ...string) *exec.Cmd {
	cmd := exec.Command("setpriv", append([]string{"--reuid", strconv.Itoa(r.uid), "--regid", strconv.Itoa(r.gid), "--init-groups", "--", r.kilnPath}, args...)...)
	cmd.Env = []string{"HOME=" + r.home(), "XDG_RUNTIME_DIR=" + r.runtimeDir(), "PATH=" + r.path, "USER=" + r.name, "LOGNAME=" + r.name, "LANG=C"}
	cmd.Dir = r.home()
	return cmd
}

func (r *rootless) kiln(args ...string) (stdout, stderr string, code int) {
	r.t.Helper()
	cmd := r.command(args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			r.t.Fatalf("kiln %v as %s: %v", args, r.name, err)
		}
		code = ee.ExitCode()
	}
	return strings.TrimSpace(out.String()), errb.String(), code
}

func (r *rootless) mustKiln(args ...string) string {
	r.t.Helper()
	out, errOut, code := r.kiln(args...)
	if code != 0 {
		r.t.Fatalf("kiln %v as %s: exit %d: %s", args, r.name, code, errOut)
	}
	return out
}

// fails runs kiln, wants it to fail and returns its stderr.
func (r *rootless) fails(args ...string) string {
	r.t.Helper()
	_, errOut, code := r.kiln(args...)
	if code == 0 {
		r.t.Fatalf("kiln %v as %s succeeded, want an error", args, r.name)
	}
	return errOut
}

// wantAll fails t for each of wants that s lacks.
func wantAll(t *testing.T, what, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, s)
		}
	}
}

// subRange is the first subordinate range file gives user.
func subRange(t *testing.T, file, name string, id int) idmap.Range {
	t.Helper()
	rs, err := idmap.SubIDs(file, name, uint32(id))
	must(t, err)
	if len(rs) == 0 {
		testenv.Unavailable(t, "%s has no range in %s (scripts/rootless-users.sh adds one)", name, file)
	}
	return rs[0]
}

// TestRootlessWorkingContainer is the working-container workflow as a
// user: from a base umoci made and skopeo pushed, run in both isolations
// (chown to a subordinate ID), copy --chown, a write through the mount
// kiln unshare keeps, config, commit, push, and the image read back by
// root's umoci with its in-image owners; then rmi, pull again, and a
// storage export imported into a second store of the user's.
func TestRootlessWorkingContainer(t *testing.T) {
	r := newRootless(t, rootlessUser)
	reg := plainRegistry(t)
	b := testbase.Push(t, reg, testbase.Spec{Kind: testbase.Busybox})
	r.mustKiln("pull", "-q", "--tls-verify=false", b.Ref)
	c := r.mustKiln("from", "--pull=never", b.Name)
	for _, iso := range []string{"oci", "chroot"} {
		r.mustKiln("run", "--isolation", iso, c, "--", "sh", "-c",
			"mkdir -p /chain && echo ran > /chain/ran-"+iso+" && busybox chown 1000:1000 /chain/ran-"+iso+" && id -u")
	}
	r.mustKiln("copy", "--chown", "123:456", c, r.file("ctx/copied", "copied\n"), "/chain/copied")
	if got := r.fails("mount", c); !strings.Contains(got, "cannot mount using driver overlay in rootless mode. You need to run it in a `kiln unshare` session") {
		t.Errorf("kiln mount outside kiln unshare: %s", got)
	}
	r.mustKiln("unshare", "sh", "-c", fmt.Sprintf(`set -e; mp=$(%[1]s mount %[2]s); echo mounted > "$mp/chain/mounted"; ls -n "$mp/chain" >/dev/null; %[1]s unmount %[2]s`, r.kilnPath, c))
	r.mustKiln("config", "--label", "rootless=yes", "--env", "CHAIN=1", c)
	r.mustKiln("commit", "-q", "--rm", c, "localhost/rootless-chain")

	// On disk the files carry host IDs: the user's own for 0, the
	// subordinate range for the others.
	sub := subRange(t, idmap.SubUIDFile, r.name, r.uid)
	owners := map[string]uint32{}
	must(t, filepath.WalkDir(filepath.Join(r.storeRoot(), "overlay"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && (d.Name() == "ran-oci" || d.Name() == "copied") {
			var st syscall.Stat_t
			must(t, syscall.Lstat(p, &st))
			owners[d.Name()] = st.Uid
		}
		return nil
	}))
	if diff := cmp.Diff(map[string]uint32{"ran-oci": sub.Start + 999, "copied": sub.Start + 122}, owners); diff != "" {
		t.Errorf("host owners of the layer's files (-want +got):\n%s", diff)
	}

	ref := "docker://" + reg + "/rootless/chain:1"
	r.mustKiln("push", "-q", "--tls-verify=false", "localhost/rootless-chain", ref)
	rootfs := testbase.Unpack(t, ref, "--src-tls-verify=false")
	testbase.Verify(t, rootfs, testbase.Busybox)
	got := map[string]string{}
	for _, name := range []string{"ran-oci", "ran-chroot", "copied", "mounted"} {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(rootfs, "chain", name), &st); err != nil {
			t.Errorf("pushed image: %v", err)
			continue
		}
		got[name] = fmt.Sprintf("%d:%d %o", st.Uid, st.Gid, st.Mode&0o7777)
	}
	want := map[string]string{"ran-oci": "1000:1000 644", "ran-chroot": "1000:1000 644", "copied": "123:456 644", "mounted": "0:0 644"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("owners and modes in the pushed image (-want +got):\n%s", diff)
	}

	r.mustKiln("rmi", "localhost/rootless-chain")
	r.mustKiln("pull", "-q", "--tls-verify=false", ref)
	if out := r.mustKiln("run", "--isolation", "chroot", r.mustKiln("from", "--pull=never", reg+"/rootless/chain:1"), "--", "sh", "-c", "cat /chain/ran-oci /chain/mounted; echo CHAIN=$CHAIN"); out != "ran\nmounted\nCHAIN=1" {
		t.Errorf("run in the pulled image printed %q", out)
	}

	export := filepath.Join(r.dir, "export")
	r.mustKiln("storage", "export", "--dir", export)
	other := []string{"--root", filepath.Join(r.home(), "other"), "--runroot", filepath.Join(r.runtimeDir(), "other")}
	r.mustKiln(append(other, "storage", "import", "--dir", export)...)
	if out := r.mustKiln(append(other, "images")...); !strings.Contains(out, "rootless/chain") {
		t.Errorf("the imported store lists %q", out)
	}
	r.mustKiln(append(other, "storage", "check")...)
}

// TestRootlessAsUserFirst: what needs no user namespace runs without
// one (store.Options.SnapshotsReadOnly, cmd/kiln/rootless.go), shown by
// a $PATH without newuidmap, which entering it needs: a rebuild whose
// steps are cached, a COPY whose layer is only a blob, images, inspect,
// tag and containers work there; a build that must RUN fails with the
// missing-newuidmap error and none of its first run's output. With
// newuidmap back, the COPY layer made outside has the right files and
// owners in a container, and a build that falls back to the namespace
// prints each step once.
func TestRootlessAsUserFirst(t *testing.T) {
	r := newRootless(t, rootlessUser)
	b := testbase.Push(t, plainRegistry(t), testbase.Spec{Kind: testbase.Busybox})
	r.mustKiln("pull", "-q", "--tls-verify=false", b.Ref)
	r.file("ctx/Dockerfile", "FROM "+b.Name+"\nRUN echo ran > /ran\nCOPY data /data\n")
	r.file("ctx/data", "one\n")
	ctx := filepath.Join(r.dir, "ctx")
	first := r.mustKiln("build", "-q", "-t", "localhost/first", ctx)

	bin := filepath.Join(r.dir, "bin-without-newuidmap")
	must(t, os.Mkdir(bin, 0o755))
	must(t, os.Symlink(testenv.NeedBinary(t, "runc"), filepath.Join(bin, "runc")))
	r.path = bin
	if again := r.mustKiln("build", "-q", "-t", "localhost/first", ctx); again != first {
		t.Errorf("cached rebuild outside the namespace built %s, want %s", again, first)
	}
	r.file("ctx/data", "two\n")
	second := r.mustKiln("build", "-q", "-t", "localhost/second", ctx)
	r.mustKiln("tag", "localhost/second", "localhost/tagged")
	if out := r.mustKiln("images", "--format", "{{.Name}}"); !strings.Contains(out, "localhost/tagged") {
		t.Errorf("images outside the namespace: %q", out)
	}
	if got := r.mustKiln("inspect", "--format", "{{.FromImageID}}", "localhost/tagged"); got != second {
		t.Errorf("inspect outside the namespace: %q, want %s", got, second)
	}
	r.mustKiln("containers")
	// A Dockerfile on stdin cannot be read twice: that build starts in
	// the namespace, which it cannot enter here.
	stdin := r.command("build", "-q", "-f", "-", ctx)
	stdin.Stdin = strings.NewReader("FROM " + b.Name + "\nCOPY data /data\n")
	if out, err := stdin.CombinedOutput(); err == nil || !strings.Contains(string(out), "newuidmap") {
		t.Errorf("build -f - without newuidmap: %v: %s", err, out)
	}
	out, errOut, code := r.kiln("build", "--no-cache", "-t", "localhost/third", ctx)
	if code != 125 || out != "" || !strings.Contains(errOut, "newuidmap") || strings.Contains(errOut, "STEP") {
		t.Errorf("a build that must RUN without newuidmap: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	r.path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	c := r.mustKiln("from", "--pull=never", "localhost/tagged")
	if got := r.mustKiln("run", c, "--", "sh", "-c", "cat /ran /data; stat -c %u:%g /data"); got != "ran\ntwo\n0:0" {
		t.Errorf("the COPY layer made outside the namespace, in a container: %q", got)
	}
	r.file("ctx/Dockerfile", "FROM "+b.Name+"\nRUN echo ran > /ran\nCOPY data /data\nRUN cat /data\n")
	out = r.mustKiln("build", "--log-level", "debug", "-t", "localhost/fourth", ctx)
	for _, step := range []string{"STEP 1/4", "STEP 2/4", "STEP 3/4", "STEP 4/4", "two"} {
		if n := strings.Count(out, step); n != 1 {
			t.Errorf("%q %d times in the output of a build that fell back to the namespace:\n%s", step, n, out)
		}
	}

	// Outside the namespace the base's files show host owners: a COPY
	// made there takes the owners of the directories it copies up, and of
	// those it makes, from the image (the same layer as one made in the
	// namespace), not from the disk; the directories COPY --from makes
	// are root's, as in the namespace. The base's layers have files now
	// (they ran).
	r.file("owners/Dockerfile", "FROM "+b.Name+" AS src\nFROM "+b.Name+"\nCOPY f /etc/kiln/f\nCOPY f /bin/f\nCOPY --from=src /etc/passwd /deep/er/passwd\n")
	r.file("owners/f", "f\n")
	owners := filepath.Join(r.dir, "owners")
	r.path = bin
	r.mustKiln("build", "-q", "--timestamp", "0", "-t", "localhost/owners-user", owners)
	r.path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	ns := r.command("build", "-q", "--no-cache", "--timestamp", "0", "-t", "localhost/owners-ns", owners)
	ns.Env = append(ns.Env, "KILN_USERNS_ALWAYS=1")
	if out, err := ns.CombinedOutput(); err != nil {
		t.Fatalf("build in the namespace: %v: %s", err, out)
	}
	// A Dockerfile in a FIFO can be read once: the build goes to the
	// namespace at once, and its RUN runs.
	fifo := filepath.Join(r.dir, "Dockerfile.fifo")
	must(t, syscall.Mkfifo(fifo, 0o600))
	must(t, os.Lchown(fifo, r.uid, r.gid))
	go func() {
		if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			f.WriteString("FROM " + b.Name + "\nRUN echo from-fifo\n")
			f.Close()
		}
	}()
	if out := r.mustKiln("build", "--no-cache", "-f", fifo, owners); !strings.Contains(out, "from-fifo") {
		t.Errorf("build -f FIFO printed %q", out)
	}
	diffIDs := func(ref string) string {
		return r.mustKiln("inspect", "--type", "image", "--format", "{{json .OCIv1.RootFS.DiffIDs}}", ref)
	}
	if user, inside := diffIDs("localhost/owners-user"), diffIDs("localhost/owners-ns"); user != inside {
		t.Errorf("COPY layers made outside the namespace %s, inside %s", user, inside)
	}
}

// TestRootlessBuildLikeRoot builds one Dockerfile (multi-stage, RUN that
// chowns to other IDs, COPY --chown, USER) on a base umoci made, as
// root and as the user, with --timestamp, and wants the same layers:
// the same diff IDs, and the same names, owners and modes in every
// layer the registry serves.
func TestRootlessBuildLikeRoot(t *testing.T) {
	r := newRootless(t, rootlessUser)
	e := newEnv(t, "")
	reg := plainRegistry(t)
	b := testbase.Push(t, reg, testbase.Spec{Kind: testbase.Busybox})
	dockerfile := "FROM " + b.Name + " AS builder\n" +
		"RUN mkdir -p /out && echo built > /out/built && busybox chown 4242:4343 /out/built\n" +
		"FROM " + b.Name + "\n" +
		"RUN mkdir -p /srv/app && echo x > /srv/app/f && busybox chown -R 1000:1000 /srv/app && busybox chmod 0750 /srv/app\n" +
		"COPY --chown=123:456 data /srv/data\n" +
		"COPY --from=builder /out/built /srv/built\n" +
		"USER 1000:1000\n" +
		"RUN echo as-user > /srv/app/by-user && id -u\n" +
		"USER root\n" +
		"RUN rm /srv/app/f && busybox chmod 4755 /srv/built\n"
	build := func(who string, kiln func(...string) string, dir string) []string {
		must(t, os.MkdirAll(dir, 0o755))
		must(t, os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644))
		must(t, os.MkdirAll(filepath.Join(dir, "data"), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, "data", "d.txt"), []byte("data\n"), 0o600))
		if who == "rootless" {
			r.chown(dir)
		}
		kiln("pull", "-q", "--tls-verify=false", b.Ref)
		kiln("build", "-q", "--timestamp", "0", "-t", "localhost/same", dir)
		ref := "docker://" + reg + "/same/" + who + ":1"
		kiln("push", "-q", "--tls-verify=false", "localhost/same", ref)
		var ids []string
		decodeJSON(t, kiln("inspect", "--type", "image", "--format", "{{json .OCIv1.RootFS.DiffIDs}}", "localhost/same"), &ids)
		return ids
	}
	rootDir := t.TempDir()
	rootIDs := build("root", e.mustKiln, rootDir)
	userIDs := build("rootless", r.mustKiln, filepath.Join(r.dir, "ctx"))
	if diff := cmp.Diff(rootIDs, userIDs); diff != "" {
		t.Errorf("diff IDs, root's (-) and the user's (+):\n%s", diff)
	}
	rootLayers := layerEntries(t, "docker://"+reg+"/same/root:1")
	userLayers := layerEntries(t, "docker://"+reg+"/same/rootless:1")
	if diff := cmp.Diff(rootLayers, userLayers); diff != "" {
		t.Errorf("layer entries (name owner mode), root's (-) and the user's (+):\n%s", diff)
	}
}

// TestRootlessRichBase pulls the rich base (whiteouts, an opaque
// directory, hard links, an xattr, a device node, a setuid file, other
// owners) as the user: everything but the device node is there in both
// isolations, and kiln notes the device it left out, as Buildah does.
func TestRootlessRichBase(t *testing.T) {
	r := newRootless(t, rootlessUser)
	b := testbase.Push(t, plainRegistry(t), testbase.Spec{Kind: testbase.Rich, Format: testbase.OCI})
	r.mustKiln("pull", "-q", "--tls-verify=false", b.Ref)
	c := r.mustKiln("from", "--pull=never", b.Name)
	script, want := testbase.Rich.Probe()
	script = strings.Replace(script, "busybox stat -c '%F %t:%T' /opt/dev/null", "test -e /opt/dev/null && echo device || echo no-device", 1)
	want = strings.Replace(want, "character special file 1:3", "no-device", 1)
	for i, iso := range []string{"oci", "chroot"} {
		got, errOut, code := r.kiln("run", "--isolation", iso, c, "--", "sh", "-c", script)
		if code != 0 {
			t.Fatalf("%s: run: exit %d: %s", iso, code, errOut)
		}
		if got != want {
			t.Errorf("%s: probe (-want +got):\n%s", iso, cmp.Diff(want, got))
		}
		if i == 0 { // the first mount unpacks the layers
			wantAll(t, "the first run's stderr", errOut, "cannot create device nodes", "opt/dev/null")
		}
	}
}

// TestRootlessBadInput: each way a rootless kiln cannot do what is asked
// fails (or warns) saying why.
func TestRootlessBadInput(t *testing.T) {
	r := newRootless(t, rootlessUser)
	e := newEnv(t, "")
	reg := plainRegistry(t)

	t.Run("an owner beyond the range", func(t *testing.T) {
		c := e.mustKiln("from", "scratch")
		mp := e.mustKiln("mount", c)
		must(t, os.WriteFile(filepath.Join(mp, "far"), []byte("far\n"), 0o644))
		must(t, os.Lchown(filepath.Join(mp, "far"), 70000, 70000))
		e.mustKiln("commit", "-q", "--rm", c, "localhost/far")
		e.mustKiln("push", "-q", "--tls-verify=false", "localhost/far", "docker://"+reg+"/far:1")
		sub := subRange(t, idmap.SubUIDFile, r.name, r.uid)
		got := r.fails("pull", "-q", "--tls-verify=false", "docker://"+reg+"/far:1")
		wantAll(t, "pull's error", got, `"far"`, "uid 70000", fmt.Sprintf("1-%d (host %d-%d)", sub.Count, sub.Start, sub.Start+sub.Count-1), "/etc/subuid")
		if out := r.mustKiln("images", "-q"); out != "" {
			t.Errorf("a refused pull left images: %q", out)
		}
	})

	t.Run("no subordinate ranges", func(t *testing.T) {
		n := newRootless(t, norangeUser)
		_, errOut, code := n.kiln("images")
		if code != 0 {
			t.Fatalf("images: exit %d: %s", code, errOut)
		}
		wantAll(t, "images' stderr", errOut, "has no subordinate IDs", "/etc/subuid", "usermod --add-subuids")
		b := testbase.Push(t, reg, testbase.Spec{Kind: testbase.Rich})
		got := n.fails("pull", "-q", "--tls-verify=false", b.Ref)
		wantAll(t, "pull's error", got, "is owned by", fmt.Sprintf("0 (host %d)", n.uid))
	})

	t.Run("newuidmap missing", func(t *testing.T) {
		bin := filepath.Join(r.dir, "bin-without-newuidmap")
		must(t, os.Mkdir(bin, 0o755))
		must(t, os.Symlink(testenv.NeedBinary(t, "runc"), filepath.Join(bin, "runc")))
		r.path = bin
		defer func() { r.path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" }()
		wantAll(t, "from's error", r.fails("from", "scratch"), "newuidmap", "apt-get install uidmap")
	})

	t.Run("root's store", func(t *testing.T) {
		dir, err := os.MkdirTemp("", "kiln-roots-store-")
		must(t, err)
		defer os.RemoveAll(dir)
		must(t, os.Chmod(dir, 0o755))
		store := []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run")}
		root := exec.Command(kilnBin, append(store, "images")...)
		root.Env = append(os.Environ(), "KILN_STORAGE_CONF="+e.storageConf())
		if out, err := root.CombinedOutput(); err != nil {
			t.Fatalf("root kiln images: %v: %s", err, out)
		}
		must(t, os.Chmod(filepath.Join(dir, "root"), 0o755))
		wantAll(t, "the user's error", r.fails(append(store, "images")...), "is not owned by uid "+strconv.Itoa(r.uid), "root's store")
	})

	t.Run("a user's store for root", func(t *testing.T) {
		r.mustKiln("images")
		cmd := exec.Command(kilnBin, "--root", r.storeRoot(), "--runroot", filepath.Join(r.dir, "root-run"), "images")
		cmd.Env = append(os.Environ(), "KILN_STORAGE_CONF="+e.storageConf())
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("root kiln on the user's store succeeded: %s", out)
		}
		wantAll(t, "root's error", string(out), fmt.Sprintf("owned by uid %d", r.uid), "rootless kiln's store")
	})
}

// TestRootlessNetwork: RUN's networks as a user: host (the host's
// loopback answers), none (loopback only), and private through pasta and
// through slirp4netns (a server on the host answers).
func TestRootlessNetwork(t *testing.T) {
	r := newRootless(t, rootlessUser)
	testenv.NeedBinary(t, "pasta")
	testenv.NeedBinary(t, "slirp4netns")
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	must(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "hello from the host") })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	hostIP := hostIPv4(t)
	b := testbase.Push(t, plainRegistry(t), testbase.Spec{Kind: testbase.Busybox})
	r.mustKiln("pull", "-q", "--tls-verify=false", b.Ref)
	c := r.mustKiln("from", "--pull=never", b.Name)

	// A PATH with slirp4netns and no pasta.
	slirpOnly := filepath.Join(r.dir, "bin-slirp")
	must(t, os.Mkdir(slirpOnly, 0o755))
	for _, tool := range []string{"runc", "newuidmap", "newgidmap", "slirp4netns"} {
		must(t, os.Symlink(testenv.NeedBinary(t, tool), filepath.Join(slirpOnly, tool)))
	}
	fetch := func(addr string) string {
		return "busybox wget -q -O - http://" + addr + ":" + port + "/ 2>/dev/null || echo unreachable"
	}
	// pasta maps the namespace's gateway to the host.
	viaGateway := "gw=$(busybox ip route | busybox awk '/^default/ {print $3}'); " + fetch("$gw")
	tests := []struct {
		name, network, path, script, want string
	}{
		{"host", "host", r.path, fetch("127.0.0.1"), "hello from the host"},
		{"none", "none", r.path, "busybox ip -o link | busybox awk '{print $2}'; " + fetch(hostIP), "lo:\nunreachable"},
		{"private through pasta", "private", r.path, viaGateway, "hello from the host"},
		{"private through slirp4netns", "private", slirpOnly, "cat /etc/resolv.conf; " + fetch(hostIP), "nameserver 10.0.2.3\nhello from the host"},
	}
	for _, tt := range tests {
		for _, iso := range []string{"oci", "chroot"} {
			t.Run(tt.name+"/"+iso, func(t *testing.T) {
				r.path = tt.path
				defer func() { r.path = tests[0].path }()
				if got := r.mustKiln("run", "--isolation", iso, "--network", tt.network, c, "--", "sh", "-c", tt.script); got != tt.want {
					t.Errorf("printed %q, want %q", got, tt.want)
				}
			})
		}
	}
}

// layerEntries lists, layer by layer, each entry of the image at the
// registry ref as "name uid:gid mode type", read from the blobs skopeo
// copies out.
func layerEntries(t *testing.T, ref string) [][]string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command(testenv.NeedBinary(t, "skopeo"), "copy", "-q", "--src-tls-verify=false", ref, "oci:"+dir+":x").CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy %s: %v: %s", ref, err, out)
	}
	var index struct{ Manifests []struct{ Digest string } }
	decodeJSON(t, readBlob(t, dir, "index.json"), &index)
	var manifest struct{ Layers []struct{ Digest string } }
	decodeJSON(t, readBlob(t, dir, index.Manifests[0].Digest), &manifest)
	var out [][]string
	for _, l := range manifest.Layers {
		f, err := os.Open(blobPath(dir, l.Digest))
		must(t, err)
		zr, err := gzip.NewReader(f)
		must(t, err)
		var entries []string
		tr := tar.NewReader(zr)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			must(t, err)
			entries = append(entries, fmt.Sprintf("%s %d:%d %o %c", h.Name, h.Uid, h.Gid, h.Mode, h.Typeflag))
		}
		f.Close()
		out = append(out, entries)
	}
	return out
}

func blobPath(dir, dgst string) string {
	if dgst == "index.json" {
		return filepath.Join(dir, dgst)
	}
	algo, hex, _ := strings.Cut(dgst, ":")
	return filepath.Join(dir, "blobs", algo, hex)
}

func readBlob(t *testing.T, dir, dgst string) string {
	t.Helper()
	b, err := os.ReadFile(blobPath(dir, dgst))
	must(t, err)
	return string(b)
}

// hostIPv4 is an address of this host other than loopback.
func hostIPv4(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	must(t, err)
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return n.IP.String()
		}
	}
	testenv.Unavailable(t, "this host has no IPv4 address but loopback")
	return ""
}
