package testbase

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/testenv"
)

// Applets are the busybox applets the rootfs has as symlinks in /bin;
// Debian's busybox-static runs every other applet from its shell too.
var Applets = []string{"sh", "ls", "cat", "echo", "true", "id"}

// Passwd and Group are the rootfs's /etc/passwd and /etc/group: root and
// an app user and group with ID 1000, and a staff group (50).
const (
	Passwd = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
	Group  = "root:x:0:\napp:x:1000:\nstaff:x:50:\n"
)

// DefaultPath is Docker's default PATH, which every base sets.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Rootfs returns a directory (shared, read-only) holding a busybox rootfs:
// Debian's /bin/busybox, Applets as symlinks to it, /etc/passwd and
// /etc/group.
func Rootfs(t testing.TB) string {
	t.Helper()
	needRoot(t)
	return filepath.Join(cached(t, "rootfs", func(t testing.TB, dir string) {
		writeBusybox(t, filepath.Join(dir, "rootfs"))
	}), "rootfs")
}

// RootfsTar returns a tarball of Rootfs that GNU tar made, as one would
// for docker import.
func RootfsTar(t testing.TB) string {
	t.Helper()
	needRoot(t, "tar")
	root := Rootfs(t)
	return filepath.Join(cached(t, "rootfs-tar", func(t testing.TB, dir string) {
		tool(t, "tar", "--numeric-owner", "-C", root, "-cf", filepath.Join(dir, "rootfs.tar"), ".")
	}), "rootfs.tar")
}

func writeBusybox(t testing.TB, root string) {
	t.Helper()
	writeBusyboxFrom(t, root, testenv.NeedBinary(t, "busybox"))
}

// umociLayout returns an OCI layout umoci made, holding the kinds Busybox
// (tag "busybox") and Rich (tag "rich"); made once per test binary.
func umociLayout(t testing.TB) string {
	t.Helper()
	needRoot(t, "umoci", "tar")
	return filepath.Join(cached(t, "umoci", func(t testing.TB, dir string) {
		layout := filepath.Join(dir, "layout")
		umoci(t, "init", "--layout", layout)
		umoci(t, "new", "--image", layout+":empty")

		// Busybox: one layer.
		bundle := filepath.Join(dir, "bundle")
		umoci(t, "unpack", "--image", layout+":empty", bundle)
		rootfs := filepath.Join(bundle, "rootfs")
		writeBusybox(t, rootfs)
		umoci(t, "repack", "--image", layout+":busybox", bundle)
		umoci(t, "config", "--image", layout+":busybox", "--config.cmd", "/bin/sh", "--config.env", DefaultPath)

		// Rich: what later layers change, then those layers.
		writeRichLower(t, rootfs)
		umoci(t, "repack", "--refresh-bundle", "--image", layout+":rich", bundle)
		writeRichUpper(t, rootfs)
		umoci(t, "repack", "--image", layout+":rich", bundle)
		opaque := filepath.Join(dir, "opaque")
		mustT(t, os.MkdirAll(filepath.Join(opaque, "opt/opq"), 0o755))
		mustT(t, os.WriteFile(filepath.Join(opaque, "opt/opq/c"), []byte("c\n"), 0o644))
		mustT(t, os.WriteFile(filepath.Join(opaque, "opt/opq/.wh..wh..opq"), nil, 0o644))
		layer := filepath.Join(dir, "opaque.tar")
		tool(t, "tar", "--numeric-owner", "-C", opaque, "-cf", layer, ".")
		umoci(t, "raw", "add-layer", "--image", layout+":rich", layer)
		umoci(t, "config", "--image", layout+":rich", "--config.cmd", "/bin/sh", "--config.env", DefaultPath)
		umoci(t, "rm", "--image", layout+":empty")
		umoci(t, "gc", "--layout", layout)
		mustT(t, os.RemoveAll(bundle))
	}), "layout")
}

// writeRichLower adds the files of Rich's first layer that later layers
// delete, hide or keep.
func writeRichLower(t testing.TB, root string) {
	t.Helper()
	for name, body := range map[string]string{
		"etc/motd":         "motd\n",
		"opt/old/gone.txt": "gone\n",
		"opt/old/kept.txt": "kept\n",
		"opt/opq/a":        "a\n",
		"opt/opq/sub/b":    "b\n",
	} {
		p := filepath.Join(root, name)
		mustT(t, os.MkdirAll(filepath.Dir(p), 0o755))
		mustT(t, os.WriteFile(p, []byte(body), 0o644))
	}
}

// writeRichUpper makes the changes of Rich's second layer.
func writeRichUpper(t testing.TB, root string) {
	t.Helper()
	p := func(name string) string { return filepath.Join(root, name) }
	mustT(t, os.Remove(p("opt/old/gone.txt")))
	mustT(t, os.Remove(p("etc/motd")))
	for _, d := range []string{"opt/links", "opt/empty", "opt/dev", "opt/bin", "home/app"} {
		mustT(t, os.MkdirAll(p(d), 0o755))
	}
	mustT(t, os.WriteFile(p("opt/links/a"), []byte("linked\n"), 0o644))
	mustT(t, os.Link(p("opt/links/a"), p("opt/links/b")))
	mustT(t, os.WriteFile(p("opt/xattr.txt"), []byte("attr\n"), 0o644))
	mustT(t, unix.Lsetxattr(p("opt/xattr.txt"), XattrName, []byte(XattrValue), 0))
	mustT(t, unix.Mknod(p("opt/dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	mustT(t, os.Chmod(p("opt/dev/null"), 0o666))
	mustT(t, os.WriteFile(p("opt/bin/suid"), []byte("#!/bin/sh\necho suid\n"), 0o755))
	mustT(t, os.Chmod(p("opt/bin/suid"), 0o755|os.ModeSetuid))
	mustT(t, os.Symlink("../bin/busybox", p("opt/link")))
	mustT(t, os.WriteFile(p("home/app/owned"), []byte("home\n"), 0o600))
	mustT(t, os.Chmod(p("home/app/owned"), 0o600))
	mustT(t, os.Lchown(p("home/app"), 1000, 1000))
	mustT(t, os.Lchown(p("home/app/owned"), 1000, 1000))
	mustT(t, os.WriteFile(p("opt/odd"), []byte("odd\n"), 0o640))
	mustT(t, os.Chmod(p("opt/odd"), 0o640))
	mustT(t, os.Lchown(p("opt/odd"), 123, 456))
}

// XattrName and XattrValue are the extended attribute Rich's
// /opt/xattr.txt carries.
const (
	XattrName  = "user.kiln.test"
	XattrValue = "hello"
)

func umoci(t testing.TB, args ...string) {
	t.Helper()
	tool(t, "umoci", args...)
}

func mustT(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// RootfsLayout has umoci pack the directory rootfs (a test's own tree,
// read only) as the one layer of an image with Env env and Cmd /bin/sh, in
// a new OCI layout in t's temporary directory, and returns its oci:
// reference: a base a test fills as it likes, still made by another tool.
func RootfsLayout(t testing.TB, rootfs string, env ...string) string {
	t.Helper()
	needRoot(t, "umoci", "tar")
	dir := t.TempDir()
	layout := filepath.Join(dir, "layout")
	umoci(t, "init", "--layout", layout)
	umoci(t, "new", "--image", layout+":base")
	bundle := filepath.Join(dir, "bundle")
	umoci(t, "unpack", "--image", layout+":base", bundle)
	mustT(t, os.RemoveAll(filepath.Join(bundle, "rootfs")))
	tool(t, "cp", "-a", rootfs, filepath.Join(bundle, "rootfs"))
	umoci(t, "repack", "--image", layout+":base", bundle)
	args := []string{"config", "--image", layout + ":base", "--config.cmd", "/bin/sh"}
	for _, e := range env {
		args = append(args, "--config.env", e)
	}
	umoci(t, args...)
	mustT(t, os.RemoveAll(bundle))
	return "oci:" + layout + ":base"
}
