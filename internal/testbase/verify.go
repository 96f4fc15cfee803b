package testbase

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Probe returns a shell script that shows, in a container of an image
// built on a base of kind k (docker run, podman run, kiln run), what the
// base's layers and config must give it, and the output it must print.
// It uses only busybox; the script prints nothing on standard error.
func (k Kind) Probe() (script, want string) {
	lines := []struct{ cmd, out string }{
		{"ls /bin", "busybox\ncat\necho\nid\nls\nsh\ntrue"},
		{"cat /etc/passwd /etc/group", strings.TrimSpace(Passwd + Group)},
		{`echo "PATH=$PATH"`, DefaultPath},
	}
	switch k {
	case Rich:
		lines = append(lines, []struct{ cmd, out string }{
			{"pwd", "/"},
			{"ls -A /opt", "bin\ndev\nempty\nlink\nlinks\nodd\nold\nopq\nxattr.txt"},
			{"ls -A /opt/old /opt/opq", "/opt/old:\nkept.txt\n\n/opt/opq:\nc"},
			{"cat /opt/old/kept.txt /opt/opq/c /opt/links/b", "kept\nc\nlinked"},
			{"test -e /etc/motd && echo motd-present || echo motd-gone", "motd-gone"},
			{"echo empty:$(ls -A /opt/empty)", "empty:"},
			{"busybox stat -c '%n %h %a %u:%g' /opt/links/a /opt/bin/suid /opt/odd /home/app/owned",
				"/opt/links/a 2 644 0:0\n/opt/bin/suid 1 4755 0:0\n/opt/odd 1 640 123:456\n/home/app/owned 1 600 1000:1000"},
			{"busybox stat -c '%u:%g' /home/app", "1000:1000"},
			{"busybox readlink /opt/link", "../bin/busybox"},
			{"busybox stat -c '%F %t:%T' /opt/dev/null", "character special file 1:3"},
		}...)
	case Docker:
		lines = append(lines, []struct{ cmd, out string }{
			{"pwd", "/opt/built"},
			{`echo "BUILT_BY=$BUILT_BY"`, "BUILT_BY=docker"},
			{"cat /opt/built/by /opt/built/hard /opt/built/hello.txt", "built-by-docker\nbuilt-by-docker\nhello from COPY"},
			{"busybox stat -c '%h' /opt/built/by", "2"},
			{"cat /etc/passwd.bak", strings.TrimSpace(Passwd)},
		}...)
	default:
		lines = append(lines, struct{ cmd, out string }{"pwd", "/"})
	}
	var s, w []string
	for _, l := range lines {
		s = append(s, l.cmd)
		w = append(w, l.out)
	}
	return strings.Join(s, "\n"), strings.Join(w, "\n")
}

// Verify checks on disk that root (a rootfs: a mounted container, an
// unpacked bundle) holds what a base of kind k put there, including what
// a shell cannot show (extended attributes, inode sharing). Each finding
// is a t.Errorf naming the path.
func Verify(t testing.TB, root string, k Kind) {
	t.Helper()
	p := func(name string) string { return filepath.Join(root, name) }
	wantFile := func(name, body string, mode os.FileMode, uid, gid uint32) {
		t.Helper()
		fi, err := os.Lstat(p(name))
		if err != nil {
			t.Errorf("base file: %v", err)
			return
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != mode || st.Uid != uid || st.Gid != gid {
			t.Errorf("%s: mode %v owner %d:%d, want %v %d:%d", name, fi.Mode(), st.Uid, st.Gid, mode, uid, gid)
		}
		if body == "" {
			return
		}
		if b, err := os.ReadFile(p(name)); err != nil || string(b) != body {
			t.Errorf("%s reads %q (%v), want %q", name, b, err, body)
		}
	}
	wantGone := func(name string) {
		t.Helper()
		if _, err := os.Lstat(p(name)); err == nil {
			t.Errorf("%s is there: a whiteout of a later layer was not applied", name)
		}
	}
	wantEntries := func(dir string, want ...string) {
		t.Helper()
		des, err := os.ReadDir(p(dir))
		if err != nil {
			t.Errorf("base directory: %v", err)
			return
		}
		got := []string{}
		for _, de := range des {
			got = append(got, de.Name())
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s holds %q, want %q", dir, got, want)
		}
	}
	sameInode := func(a, b string) {
		t.Helper()
		var sa, sb unix.Stat_t
		if unix.Lstat(p(a), &sa) != nil || unix.Lstat(p(b), &sb) != nil || sa.Ino != sb.Ino || sa.Nlink != 2 {
			t.Errorf("%s and %s are not one file with two links (inodes %d, %d; links %d)", a, b, sa.Ino, sb.Ino, sa.Nlink)
		}
	}

	wantFile("bin/busybox", "", 0o755, 0, 0)
	for _, a := range Applets {
		if l, err := os.Readlink(p("bin/" + a)); err != nil || l != "busybox" {
			t.Errorf("bin/%s links to %q (%v), want busybox", a, l, err)
		}
	}
	wantFile("etc/passwd", Passwd, 0o644, 0, 0)
	wantFile("etc/group", Group, 0o644, 0, 0)
	switch k {
	case Rich:
		wantGone("etc/motd")
		wantEntries("opt/old", "kept.txt")
		wantEntries("opt/opq", "c")
		wantEntries("opt/empty")
		wantFile("opt/old/kept.txt", "kept\n", 0o644, 0, 0)
		wantFile("opt/opq/c", "c\n", 0o644, 0, 0)
		wantFile("opt/links/a", "linked\n", 0o644, 0, 0)
		sameInode("opt/links/a", "opt/links/b")
		buf := make([]byte, 64)
		if n, err := unix.Lgetxattr(p("opt/xattr.txt"), XattrName, buf); err != nil || string(buf[:n]) != XattrValue {
			t.Errorf("opt/xattr.txt: xattr %s = %q (%v), want %q", XattrName, buf[:max(n, 0)], err, XattrValue)
		}
		var st unix.Stat_t
		if err := unix.Lstat(p("opt/dev/null"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3 {
			t.Errorf("opt/dev/null is not the character device 1:3 (mode %o rdev %d:%d, %v)", st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev), err)
		}
		wantFile("opt/bin/suid", "#!/bin/sh\necho suid\n", 0o755|os.ModeSetuid, 0, 0)
		if l, err := os.Readlink(p("opt/link")); err != nil || l != "../bin/busybox" {
			t.Errorf("opt/link links to %q (%v), want ../bin/busybox", l, err)
		}
		wantFile("home/app", "", 0o755|os.ModeDir, 1000, 1000)
		wantFile("home/app/owned", "home\n", 0o600, 1000, 1000)
		wantFile("opt/odd", "odd\n", 0o640, 123, 456)
	case Docker:
		wantFile("opt/built/by", "built-by-docker\n", 0o644, 0, 0)
		sameInode("opt/built/by", "opt/built/hard")
		wantFile("opt/built/hello.txt", "hello from COPY\n", 0o644, 0, 0)
		wantEntries("etc", "group", "passwd", "passwd.bak")
	}
}

// Unpack has skopeo copy the image at ref (extra being flags such as
// --src-tls-verify=false) to an OCI layout with gzip layers (umoci 0.4
// reads no zstd), umoci unpack it, and returns the rootfs: how a test
// reads back what kiln pushed with tools that are not kiln.
func Unpack(t testing.TB, ref string, extra ...string) string {
	t.Helper()
	needRoot(t, "skopeo", "umoci")
	dir := t.TempDir()
	args := append([]string{"copy", "-q", "--dest-compress", "--dest-compress-format", "gzip"}, extra...)
	skopeo(t, append(args, ref, "oci:"+dir+"/layout:unpack")...)
	umoci(t, "unpack", "--image", dir+"/layout:unpack", dir+"/bundle")
	return filepath.Join(dir, "bundle", "rootfs")
}
