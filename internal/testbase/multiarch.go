package testbase

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/testenv"
)

// debArch maps GOARCH names to Debian's architecture names.
var debArch = map[string]string{"amd64": "amd64", "arm64": "arm64", "arm": "armhf", "386": "i386", "ppc64le": "ppc64el", "s390x": "s390x", "riscv64": "riscv64"}

var busyboxMu sync.Mutex

// BusyboxFor returns the path of Debian's static busybox for arch (a
// GOARCH name): this machine's /bin/busybox for its own architecture,
// else busybox-static:ARCH downloaded from Debian's mirror (dpkg
// --add-architecture, apt-get update when the package is unknown,
// apt-get download) and unpacked with dpkg-deb -x. The binary is kept in
// the user's cache directory (kiln-testbase/busybox-ARCH) for later test
// binaries; it is read only.
func BusyboxFor(t testing.TB, arch string) string {
	t.Helper()
	if arch == runtime.GOARCH {
		return testenv.NeedBinary(t, "busybox")
	}
	deb, ok := debArch[arch]
	if !ok {
		t.Fatalf("no Debian architecture for %s", arch)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "kiln-testbase", "busybox-"+arch)
	bin := filepath.Join(dir, "busybox")
	busyboxMu.Lock()
	defer busyboxMu.Unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	// Test binaries run at once (go test ./...): one downloads, the others
	// wait for it (apt-get takes its own locks and fails instead).
	mustT(t, os.MkdirAll(dir, 0o755))
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	mustT(t, err)
	defer lock.Close()
	mustT(t, unix.Flock(int(lock.Fd()), unix.LOCK_EX))
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	testenv.NeedRoot(t, "adding a dpkg architecture to download busybox-static:"+deb)
	for _, b := range []string{"dpkg", "apt-get", "apt-cache", "dpkg-deb"} {
		testenv.NeedBinary(t, b)
	}
	pkg := "busybox-static:" + deb
	if !strings.Contains(tool(t, "dpkg", "--print-foreign-architectures")+" "+tool(t, "dpkg", "--print-architecture"), deb) {
		tool(t, "dpkg", "--add-architecture", deb)
	}
	if exec.Command("apt-cache", "show", pkg).Run() != nil {
		tool(t, "apt-get", "update", "-qq")
	}
	work := t.TempDir()
	// apt-get download writes as _apt where it can: a directory it may
	// write keeps it from warning.
	mustT(t, os.Chmod(work, 0o777))
	cmd := exec.Command("apt-get", "download", "-qq", pkg)
	cmd.Dir = work
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("apt-get download %s: %v\n%s", pkg, err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(work, "busybox-static_*_"+deb+".deb"))
	if len(debs) != 1 {
		t.Fatalf("apt-get download %s wrote %v", pkg, debs)
	}
	root := filepath.Join(work, "root")
	tool(t, "dpkg-deb", "-x", debs[0], root)
	data, err := os.ReadFile(filepath.Join(root, "bin/busybox"))
	mustT(t, err)
	tmp, err := os.CreateTemp(dir, ".busybox-*")
	mustT(t, err)
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	mustT(t, err)
	mustT(t, tmp.Chmod(0o755))
	mustT(t, tmp.Sync())
	mustT(t, tmp.Close())
	mustT(t, os.Rename(tmp.Name(), bin))
	return bin
}

// ArchRootfs returns a directory (shared, read-only) holding a busybox
// rootfs as Rootfs does, with the busybox of arch (see BusyboxFor).
func ArchRootfs(t testing.TB, arch string) string {
	t.Helper()
	needRoot(t)
	return filepath.Join(cached(t, "rootfs-"+arch, func(t testing.TB, dir string) {
		bb := BusyboxFor(t, arch)
		writeBusyboxFrom(t, filepath.Join(dir, "rootfs"), bb)
	}), "rootfs")
}

// MultiArchLayout returns an OCI layout umoci made holding one busybox
// image per architecture of arches, tagged busybox-ARCH, each config
// recording linux/ARCH; made once per test binary for a set of arches.
func MultiArchLayout(t testing.TB, arches ...string) string {
	t.Helper()
	needRoot(t, "umoci", "tar")
	return filepath.Join(cached(t, "umoci-"+strings.Join(arches, "-"), func(t testing.TB, dir string) {
		layout := filepath.Join(dir, "layout")
		umoci(t, "init", "--layout", layout)
		umoci(t, "new", "--image", layout+":empty")
		for _, arch := range arches {
			bundle := filepath.Join(dir, "bundle-"+arch)
			tag := layout + ":busybox-" + arch
			umoci(t, "unpack", "--image", layout+":empty", bundle)
			writeBusyboxFrom(t, filepath.Join(bundle, "rootfs"), BusyboxFor(t, arch))
			umoci(t, "repack", "--image", tag, bundle)
			umoci(t, "config", "--image", tag, "--config.cmd", "/bin/sh", "--config.env", DefaultPath,
				"--os", "linux", "--architecture", arch)
			mustT(t, os.RemoveAll(bundle))
		}
		umoci(t, "rm", "--image", layout+":empty")
		umoci(t, "gc", "--layout", layout)
	}), "layout")
}

// PushMultiArch pushes a manifest list of busybox images, one per
// architecture of arches, to the registry at host (plain HTTP) as
// HOST/testbase/busybox-multi:latest, and returns that name. The list is
// made by buildah (manifest create, add, push --all) in a store of its
// own, from the images of MultiArchLayout; skopeo inspect --raw of the
// name reads it back.
func PushMultiArch(t testing.TB, host string, arches ...string) string {
	t.Helper()
	needRoot(t, "buildah")
	layout := MultiArchLayout(t, arches...)
	dir := t.TempDir()
	buildah := func(args ...string) string {
		t.Helper()
		return tool(t, "buildah", append([]string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"), "--storage-driver", "vfs"}, args...)...)
	}
	defer func() {
		// buildah leaves its store's mounts (none for vfs) and files behind.
		if out, err := exec.Command("buildah", "--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"), "--storage-driver", "vfs", "rmi", "--all", "--force").CombinedOutput(); err != nil {
			t.Logf("buildah rmi --all: %v: %s", err, out)
		}
	}()
	buildah("manifest", "create", "localhost/busybox-multi")
	for _, arch := range arches {
		buildah("manifest", "add", "--os", "linux", "--arch", arch, "localhost/busybox-multi", "oci:"+layout+":busybox-"+arch)
	}
	name := fmt.Sprintf("%s/testbase/busybox-multi:latest", host)
	buildah("manifest", "push", "--all", "--tls-verify=false", "localhost/busybox-multi", "docker://"+name)
	return name
}

// writeBusyboxFrom writes the busybox binary bb, its applet links and a
// root user and group into root.
func writeBusyboxFrom(t testing.TB, root, bb string) {
	t.Helper()
	data, err := os.ReadFile(bb)
	mustT(t, err)
	mustT(t, os.MkdirAll(filepath.Join(root, "bin"), 0o755))
	mustT(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	mustT(t, os.WriteFile(filepath.Join(root, "bin/busybox"), data, 0o755))
	for _, a := range Applets {
		mustT(t, os.Symlink("busybox", filepath.Join(root, "bin", a)))
	}
	mustT(t, os.WriteFile(filepath.Join(root, "etc/passwd"), []byte(Passwd), 0o644))
	mustT(t, os.WriteFile(filepath.Join(root, "etc/group"), []byte(Group), 0o644))
}
