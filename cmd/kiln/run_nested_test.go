package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/kiln-build/kiln/internal/testenv"
)

// capsByBit is every capability of Linux 5.9 and later, in bit order.
var capsByBit = strings.Fields(`CAP_CHOWN CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER CAP_FSETID
CAP_KILL CAP_SETGID CAP_SETUID CAP_SETPCAP CAP_LINUX_IMMUTABLE CAP_NET_BIND_SERVICE
CAP_NET_BROADCAST CAP_NET_ADMIN CAP_NET_RAW CAP_IPC_LOCK CAP_IPC_OWNER CAP_SYS_MODULE
CAP_SYS_RAWIO CAP_SYS_CHROOT CAP_SYS_PTRACE CAP_SYS_PACCT CAP_SYS_ADMIN CAP_SYS_BOOT
CAP_SYS_NICE CAP_SYS_RESOURCE CAP_SYS_TIME CAP_SYS_TTY_CONFIG CAP_MKNOD CAP_LEASE
CAP_AUDIT_WRITE CAP_AUDIT_CONTROL CAP_SETFCAP CAP_MAC_OVERRIDE CAP_MAC_ADMIN CAP_SYSLOG
CAP_WAKE_ALARM CAP_BLOCK_SUSPEND CAP_AUDIT_READ CAP_PERFMON CAP_BPF CAP_CHECKPOINT_RESTORE`)

// nestedBuild is what the CI job inside the container runs: it makes a
// base image from scratch, then from/copy/run/commit on it with the
// default isolation. The container's runc is a decoy that fails, so the
// runs pass only when kiln picks the chroot isolation by itself.
const nestedBuild = `set -eu
k() { kiln --root /store --runroot /run/kiln "$@"; }
c=$(k from scratch)
mp=$(k mount "$c")
mkdir -p "$mp/bin" "$mp/etc"
cp /bin/busybox "$mp/bin/busybox"
for a in sh cat echo hostname id ls; do ln -s busybox "$mp/bin/$a"; done
cp /etc/passwd /etc/group "$mp/etc/"
k commit --rm "$c" localhost/base >/dev/null
c=$(k from localhost/base)
k copy "$c" /ctx/hello.txt /app/hello.txt
k run "$c" -- sh -c 'echo "built by $(id -u) on $(hostname)" > /app/built.txt; cat /app/hello.txt'
k run --network none --user app "$c" -- sh -c 'ls /sys/class/net; id -u'
k config --cmd '["cat", "/app/built.txt"]' "$c"
k commit --rm "$c" localhost/result >/dev/null
echo inside-done
`

// TestKilnInsideRuncContainer runs the kiln binary in a runc container
// (busybox and kiln in its rootfs, the store on a bind-mounted host
// directory), where it must default to the chroot isolation and build an
// image; then kiln on the host reads that store and runs the image.
func TestKilnInsideRuncContainer(t *testing.T) {
	e := newEnv(t, "")
	out := runNested(t, e, nestedBuild, "hello from the context\n")
	want := "hello from the context\nlo\n1000\ninside-done\n"
	if out != want {
		t.Errorf("output inside the container = %q, want %q", out, want)
	}

	// The host reads the store the container wrote.
	if got := e.mustKiln("images", "--format", "{{.Name}}"); !strings.Contains(got, "localhost/result") || !strings.Contains(got, "localhost/base") {
		t.Fatalf("host images:\n%s", got)
	}
	c := e.mustKiln("from", "localhost/result")
	mp := e.mustKiln("mount", c)
	got := files(t, mp)
	wantFiles := []string{"app/built.txt", "app/hello.txt", "bin/busybox", "bin/cat", "bin/echo", "bin/hostname", "bin/id", "bin/ls", "bin/sh", "etc/group", "etc/passwd"}
	if strings.Join(got, " ") != strings.Join(wantFiles, " ") {
		t.Errorf("files of the image built inside (the run's /etc/hosts, /etc/resolv.conf, /etc/hostname and /proc, /dev, /sys must not be there):\n got %v\nwant %v", got, wantFiles)
	}
	for _, d := range []string{"proc", "dev", "sys"} {
		if _, err := os.Lstat(filepath.Join(mp, d)); err == nil {
			t.Errorf("the image built inside has /%s", d)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(mp, "app/built.txt")); !strings.HasPrefix(string(b), "built by 0 on ") {
		t.Errorf("app/built.txt = %q", b)
	}
	// And the host runs it with its own runc.
	if got := e.mustKiln("run", "--isolation", "oci", c, "--", "cat", "/app/hello.txt"); got != "hello from the context" {
		t.Errorf("host run = %q", got)
	}
	e.mustKiln("rm", c)
}

// runNested runs script as a CI job in a runc container: busybox and
// kiln in its root, the store of e bind-mounted at /store, a directory
// holding hello.txt (content hello) at /ctx. It fails the test unless the
// job exits 0 and prints "inside-done", and returns what it printed.
func runNested(t *testing.T, e *env, script, hello string) string {
	t.Helper()
	runc := testenv.NeedBinary(t, "runc")
	dir := t.TempDir()
	rootfs, ctxDir := filepath.Join(dir, "rootfs"), filepath.Join(dir, "ctx")
	store := filepath.Join(e.root, "root")
	for _, d := range []string{store, ctxDir} {
		must(t, os.MkdirAll(d, 0o755))
	}
	must(t, os.WriteFile(filepath.Join(ctxDir, "hello.txt"), []byte(hello), 0o644))
	nestedRootfs(t, rootfs)
	must(t, os.WriteFile(filepath.Join(rootfs, "build.sh"), []byte(script), 0o755))
	bundle := filepath.Join(dir, "bundle")
	writeNestedSpec(t, runc, bundle, rootfs, []specs.Mount{
		{Destination: "/store", Type: "bind", Source: store, Options: []string{"rbind", "rw"}},
		{Destination: "/ctx", Type: "bind", Source: ctxDir, Options: []string{"rbind", "ro"}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	state := filepath.Join(dir, "runc-state")
	id := "kiln-nested-" + filepath.Base(dir)
	cmd := exec.CommandContext(ctx, runc, "--root", state, "run", "--bundle", bundle, id)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	exec.Command(runc, "--root", state, "delete", "--force", id).Run()
	if runErr != nil || !strings.Contains(out.String(), "inside-done") {
		t.Fatalf("the job inside the container failed: %v\n%s", runErr, out.String())
	}
	return out.String()
}

// nestedRootfs makes the outer container's root filesystem: busybox with
// its applets, kiln, a decoy runc and a passwd with root and app.
func nestedRootfs(t *testing.T, rootfs string) {
	t.Helper()
	bb := testenv.NeedBinary(t, "busybox")
	for _, d := range []string{"bin", "etc", "tmp", "run", "usr/local/bin", "usr/bin", "store", "ctx"} {
		must(t, os.MkdirAll(filepath.Join(rootfs, d), 0o755))
	}
	copyFile(t, bb, filepath.Join(rootfs, "bin/busybox"))
	copyFile(t, kilnBin, filepath.Join(rootfs, "usr/local/bin/kiln"))
	list, err := exec.Command(bb, "--list").Output()
	must(t, err)
	for name := range strings.FieldsSeq(string(list)) {
		if name != "busybox" {
			must(t, os.Symlink("busybox", filepath.Join(rootfs, "bin", name)))
		}
	}
	decoy := "#!/bin/sh\necho 'runc was used inside the container' >&2\nexit 99\n"
	must(t, os.WriteFile(filepath.Join(rootfs, "usr/bin/runc"), []byte(decoy), 0o755))
	must(t, os.WriteFile(filepath.Join(rootfs, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(rootfs, "etc/group"), []byte("root:x:0:\napp:x:1000:\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(rootfs, "build.sh"), []byte(nestedBuild), 0o755))
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	must(t, err)
	must(t, os.WriteFile(dst, b, 0o755))
}

// writeNestedSpec writes runc's own default spec ("runc spec"), changed
// into a privileged CI job: every capability, a writable root, the extra
// mounts, and the build script as the process. The default masked and
// read-only /proc paths stay.
func writeNestedSpec(t *testing.T, runc, bundle, rootfs string, mounts []specs.Mount) {
	t.Helper()
	must(t, os.MkdirAll(bundle, 0o755))
	if out, err := exec.Command(runc, "spec", "--bundle", bundle).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	must(t, err)
	var s specs.Spec
	must(t, json.Unmarshal(b, &s))
	s.Root = &specs.Root{Path: rootfs}
	s.Hostname = "ci-job"
	s.Process.Terminal = false
	s.Process.Args = []string{"/bin/sh", "/build.sh"}
	s.Process.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/root"}
	caps := boundingCaps(t)
	s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}
	s.Process.NoNewPrivileges = false
	s.Mounts = append(s.Mounts, mounts...)
	b, err = json.Marshal(&s)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644))
}

// boundingCaps returns the capabilities in this process's bounding set:
// the outer container is a privileged CI job (kiln needs CAP_SYS_ADMIN to
// mount), with as much as this machine allows.
func boundingCaps(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	must(t, err)
	var mask uint64
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			mask, err = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			must(t, err)
		}
	}
	var caps []string
	for i, name := range capsByBit {
		if mask&(1<<uint(i)) != 0 {
			caps = append(caps, name)
		}
	}
	return caps
}
