package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/storagesetup/loop/looptest"
)

// storageEnv is an env with a storage.conf that names the driver, the
// way an administrator's host has one; migrate rewrites it.
type storageEnv struct {
	*env
	conf string
}

func newStorageEnv(t *testing.T, dir, driver string) *storageEnv {
	requiresRoot(t)
	if dir == "" {
		dir = t.TempDir()
	}
	se := &storageEnv{env: &env{t: t, root: dir}, conf: filepath.Join(dir, "storage.conf")}
	must(t, os.WriteFile(se.conf, []byte("# kiln storage\n[storage]\ndriver = \""+driver+"\"\n\n[storage.options]\nmin_free_space = \"0\"\n"), 0o644))
	t.Cleanup(func() { se.kiln("storage", "reset", "--force") })
	return se
}

func (se *storageEnv) kiln(a ...string) (string, string, int) {
	se.t.Helper()
	return se.env.kiln(append([]string{"--storage-conf", se.conf}, a...)...)
}

func (se *storageEnv) mustKiln(a ...string) string {
	se.t.Helper()
	return se.env.mustKiln(append([]string{"--storage-conf", se.conf}, a...)...)
}

func (se *storageEnv) runWith(env []string, a ...string) (string, string, int) {
	se.t.Helper()
	return se.env.run("", env, append([]string{"--storage-conf", se.conf}, a...)...)
}

// confDriver is the driver storage.conf names now.
func (se *storageEnv) confDriver() string {
	b, err := os.ReadFile(se.conf)
	must(se.t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.TrimSpace(k) == "driver" {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return ""
}

// populate fills the store the way the administrator left it: a
// pulled image (its compressed blobs kept), images committed here, and a
// mounted working container with files of every kind, half done.
func (se *storageEnv) populate() {
	t := se.t
	se.env.busybox()
	se.mustKiln("tag", "localhost/busybox", "localhost/busybox:also")
	c := se.mustKiln("from", "localhost/busybox")
	se.mustKiln("config", "--label", "src=pulled", "--env", "A=1", c)
	se.mustKiln("commit", "-q", "--rm", c, "localhost/topull")
	layout := filepath.Join(t.TempDir(), "layout")
	se.mustKiln("push", "localhost/topull", "oci:"+layout+":pulled")
	se.mustKiln("rmi", "localhost/topull")
	id := se.mustKiln("pull", "-q", "oci:"+layout+":pulled")
	se.mustKiln("tag", id, "localhost/pulled")

	ctr := se.mustKiln("from", "--name", "half-done", "localhost/pulled")
	mp := se.mustKiln("mount", ctr)
	writeTree(t, mp)
	se.mustKiln("config", "--entrypoint", `["/bin/sh","-c","echo hi"]`, "--label", "stage=one", ctr)
	se.mustKiln("commit", "-q", ctr, "localhost/stage-one")
	// More work after the commit: the writable layer is not empty.
	must(t, os.WriteFile(filepath.Join(mp, "after-commit"), []byte("later\n"), 0o600))
	must(t, os.Remove(filepath.Join(mp, "etc/group")))
	se.mustKiln("config", "--label", "stage=two", "--workingdir", "/srv", ctr)
}

// writeTree writes files with owners, modes, xattrs, links, a deleted
// file and an opaque directory into a container's mount.
func writeTree(t *testing.T, mp string) {
	t.Helper()
	for _, d := range []string{"srv/data/sub", "srv/sticky", "opaque/inner"} {
		must(t, os.MkdirAll(filepath.Join(mp, d), 0o755))
	}
	write := func(p, body string, mode os.FileMode, uid, gid int) {
		full := filepath.Join(mp, p)
		must(t, os.WriteFile(full, []byte(body), 0o600))
		must(t, os.Lchown(full, uid, gid))
		must(t, os.Chmod(full, mode))
	}
	write("srv/data/app.conf", "key=value\n", 0o640, 1000, 50)
	write("srv/data/sub/run.sh", "#!/bin/sh\necho run\n", 0o750|os.ModeSetuid, 0, 0)
	write("srv/data/big.bin", strings.Repeat("kiln\x00", 200000), 0o644, 1000, 1000)
	write("opaque/inner/file", "inner", 0o644, 0, 0)
	must(t, os.Chmod(filepath.Join(mp, "srv/sticky"), 0o777|os.ModeSticky))
	must(t, os.Lchown(filepath.Join(mp, "srv/sticky"), 1000, 50))
	must(t, unix.Lsetxattr(filepath.Join(mp, "srv/data/app.conf"), "user.kiln.note", []byte("keep me"), 0))
	must(t, unix.Lsetxattr(filepath.Join(mp, "srv/data"), "user.kiln.dir", []byte{0, 1, 2, 255}, 0))
	must(t, os.Symlink("../data/app.conf", filepath.Join(mp, "srv/sticky/link")))
	must(t, os.Link(filepath.Join(mp, "srv/data/app.conf"), filepath.Join(mp, "srv/hardlink")))
	must(t, os.Remove(filepath.Join(mp, "bin/cat")))
	// An opaque directory: everything in it replaced.
	must(t, os.RemoveAll(filepath.Join(mp, "opaque")))
	must(t, os.MkdirAll(filepath.Join(mp, "opaque"), 0o700))
	must(t, os.WriteFile(filepath.Join(mp, "opaque/new"), []byte("new"), 0o644))
}

// storeSnapshot is what must survive a migration, byte for byte.
type storeSnapshot struct {
	Images     []string // id, manifest digest and names
	Containers []string // id and name
	Mounted    []string // names of mounted containers
	Config     map[string]any
	Tree       []string
}

func (se *storageEnv) snapshot() storeSnapshot {
	t := se.t
	var s storeSnapshot
	var imgs []struct {
		ID     string   `json:"id"`
		Names  []string `json:"names"`
		Digest string   `json:"digest"`
	}
	decodeJSON(t, se.mustKiln("images", "--all", "--json"), &imgs)
	for _, i := range imgs {
		s.Images = append(s.Images, fmt.Sprintf("%s %s %v", i.ID, i.Digest, i.Names))
	}
	sort.Strings(s.Images)
	s.Containers = strings.Split(se.mustKiln("containers", "--notruncate", "--format", "{{.ContainerID}} {{.ContainerName}}"), "\n")
	var mountPath string
	for _, line := range strings.Split(se.mustKiln("mount"), "\n") {
		if name, p, ok := strings.Cut(line, " "); ok {
			s.Mounted = append(s.Mounted, name)
			if name == "half-done" {
				mountPath = p
			}
		}
	}
	var inspect map[string]any
	decodeJSON(t, se.mustKiln("inspect", "--type", "container", "half-done"), &inspect)
	delete(inspect, "MountPoint")
	s.Config = inspect
	if mountPath == "" {
		t.Fatalf("container half-done is not mounted; mounts: %v", s.Mounted)
	}
	s.Tree = treeOf(t, mountPath)
	return s
}

// treeOf lists every entry under root with its type, mode, owner, size,
// content hash, link target and xattrs.
func treeOf(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	must(t, filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		st := fi.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%s %v %d:%d", rel, fi.Mode(), st.Uid, st.Gid)
		switch {
		case fi.Mode().IsRegular():
			f, err := os.Open(p)
			must(t, err)
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			must(t, err)
			line += fmt.Sprintf(" %d %x nlink=%d", fi.Size(), h.Sum(nil), st.Nlink)
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			must(t, err)
			line += " -> " + target
		}
		return appendXattrs(&out, line, p)
	}))
	return out
}

func appendXattrs(out *[]string, line, p string) error {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil && err != unix.ENOTSUP {
		return err
	}
	var names []string
	for _, name := range strings.Split(string(buf[:max(n, 0)]), "\x00") {
		if strings.HasPrefix(name, "user.") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		v := make([]byte, 4096)
		m, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			return err
		}
		line += fmt.Sprintf(" %s=%q", name, v[:m])
	}
	*out = append(*out, line)
	return nil
}

func (se *storageEnv) migrate(to string) {
	se.t.Helper()
	out := se.mustKiln("storage", "migrate", "--driver", to)
	if !strings.Contains(out, "to "+to) {
		se.t.Errorf("migrate said %q", out)
	}
	if got := se.confDriver(); got != to {
		se.t.Errorf("storage.conf names driver %q after migrating to %s", got, to)
	}
	if _, err := os.Stat(filepath.Join(se.root, "root", ".kiln-migrate")); !os.IsNotExist(err) {
		se.t.Errorf("the migration's workspace is left behind: %v", err)
	}
}

// TestStorageMigrateRoundTrip migrates a store with pulled and committed
// images and a mounted, half-done working container through every
// driver and back, on a loop-mounted btrfs so that btrfs is one of them:
// images keep their IDs and digests, the container its files, owners,
// modes, xattrs, config and mount, and a pushed image its digest.
func TestStorageMigrateRoundTrip(t *testing.T) {
	requiresRoot(t)
	dir, drivers := "", []string{"vfs", "overlay"}
	if _, err := exec.LookPath("mkfs.btrfs"); err == nil {
		dir = looptest.New(t, "btrfs", 1<<30, nil, "").Dir
		drivers = []string{"vfs", "btrfs", "overlay"}
	} else {
		t.Log("mkfs.btrfs is missing: migrating overlay -> vfs -> overlay only")
	}
	se := newStorageEnv(t, dir, "overlay")
	se.mustKiln("--storage-driver", "overlay", "images")
	se.populate()
	want := se.snapshot()
	t.Logf("migrating overlay -> %v: %d images, %d entries in the container", drivers, len(want.Images), len(want.Tree))
	pushed := filepath.Join(t.TempDir(), "pushed")
	se.mustKiln("push", "localhost/pulled", "oci:"+pushed+":before")
	for _, to := range drivers {
		se.migrate(to)
		if diff := cmp.Diff(want, se.snapshot()); diff != "" {
			t.Fatalf("after migrating to %s (-before +after):\n%s", to, diff)
		}
		se.mustKiln("push", "localhost/pulled", "oci:"+pushed+":after-"+to)
	}
	digests := map[string]bool{}
	for _, line := range strings.Split(readFile(t, filepath.Join(pushed, "index.json")), "\n") {
		if i := strings.Index(line, `"sha256:`); i >= 0 {
			digests[line[i:i+73]] = true
		}
	}
	if len(digests) != 1 {
		t.Errorf("pushing the pulled image after each migration gave %d manifest digests, want 1: %v", len(digests), digests)
	}
	if out := se.mustKiln("storage", "check", "--digests"); !strings.Contains(out, "0 problems") {
		t.Errorf("check after the migrations: %s", out)
	}
	// The container goes on working where it stopped.
	se.mustKiln("commit", "-q", "half-done", "localhost/stage-two")
}

// TestStorageMigrateSurvivesKills kills the migration at every named
// point; before the switch the old store is untouched and usable, and in
// every case running the migration again finishes it with nothing lost.
func TestStorageMigrateSurvivesKills(t *testing.T) {
	se := newStorageEnv(t, "", "overlay")
	se.mustKiln("--storage-driver", "overlay", "images")
	se.populate()
	want := se.snapshot()
	cur := "overlay"
	for _, point := range []string{"mid-export", "after-export", "mid-import", "after-import", "after-check", "mid-switch", "after-switch", "after-config"} {
		to := map[string]string{"overlay": "vfs", "vfs": "overlay"}[cur]
		_, errOut, code := se.runWith([]string{"KILN_FAULT=migrate:" + point}, "storage", "migrate", "--driver", to)
		if code != -1 {
			t.Fatalf("migrate with fault %s: exit %d, want killed (stderr %s)", point, code, errOut)
		}
		if strings.HasPrefix(point, "mid-ex") || strings.HasPrefix(point, "after-ex") || strings.Contains(point, "import") || point == "after-check" {
			if diff := cmp.Diff(want, se.snapshot()); diff != "" {
				t.Fatalf("old store after a kill at %s (-before +after):\n%s", point, diff)
			}
			if got := se.confDriver(); got != cur {
				t.Fatalf("storage.conf names %s after a kill at %s before the switch", got, point)
			}
		}
		se.migrate(to)
		if diff := cmp.Diff(want, se.snapshot()); diff != "" {
			t.Fatalf("after a kill at %s and a rerun (-before +after):\n%s", point, diff)
		}
		cur = to
	}
}
