package run

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/testenv"
)

// probes are the calls testdata/seccomp_probe.c makes.
var probes = []string{
	"threads", "fork-exec", "clone-newuser", "unshare-user", "clone3",
	"personality-query", "personality-no-aslr", "keyctl", "io_uring_setup",
	"socket-alg", "socket-vsock", "socket-unix", "mkdir", "newest-call",
}

// buildProbe compiles the probe as a static binary.
func buildProbe(t *testing.T) string {
	t.Helper()
	testenv.NeedBinary(t, "gcc")
	out := filepath.Join(t.TempDir(), "seccomp_probe")
	cmd := exec.Command("gcc", "-static", "-O1", "-pthread", "-Wall", "-o", out, "testdata/seccomp_probe.c")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the probe: %v\n%s", err, b)
	}
	return out
}

// probeResults parses the probe's "NAME RESULT" lines.
func probeResults(t *testing.T, out string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		name, res, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("bad probe output line %q", line)
		}
		m[name] = res
	}
	return m
}

// TestSeccompInContainer runs the probe under both isolations with each
// policy: the default profile refuses what Docker's refuses and lets
// threads, fork and exec work; CAP_SYS_ADMIN unlocks namespaces;
// unconfined (and a profile that only denies mkdir) behaves as the host.
func TestSeccompInContainer(t *testing.T) {
	requiresRoot(t)
	probe := buildProbe(t)
	hostOut, err := exec.Command(probe, probes...).Output()
	if err != nil {
		t.Fatal(err)
	}
	host := probeResults(t, string(hostOut))
	dir := t.TempDir()
	denyMkdir := filepath.Join(dir, "deny-mkdir.json")
	err = os.WriteFile(denyMkdir, []byte(`{"defaultAction": "SCMP_ACT_ALLOW",
		"syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	with := func(m map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	dflt := map[string]string{
		"threads": "ok", "fork-exec": "ok", "clone-newuser": "EPERM", "unshare-user": "EPERM",
		"clone3": "ENOSYS", "personality-query": "ok", "personality-no-aslr": "EPERM",
		"keyctl": "EPERM", "io_uring_setup": "EPERM", "socket-alg": "EPERM", "socket-vsock": "EPERM",
		"socket-unix": "ok", "mkdir": "ok", "newest-call": "ENOSYS",
	}
	tests := []struct {
		name  string
		opts  []string
		caps  []string
		probe []string
		want  map[string]string
	}{
		{name: "default", want: dflt},
		{name: "CAP_SYS_ADMIN", caps: []string{"CAP_SYS_ADMIN"},
			want: with(dflt, "clone-newuser", "ok", "unshare-user", "ok", "clone3", "ok")},
		{name: "unconfined", opts: []string{"seccomp=unconfined"}, want: host},
		{name: "profile denying mkdir", opts: []string{"seccomp=" + denyMkdir}, want: with(host, "mkdir", "EPERM")},
	}
	if _, err := os.Stat("/usr/share/containers/seccomp.json"); err == nil {
		tests = append(tests, struct {
			name  string
			opts  []string
			caps  []string
			probe []string
			want  map[string]string
		}{name: "podman's profile", opts: []string{"seccomp=/usr/share/containers/seccomp.json"},
			probe: []string{"threads", "fork-exec", "socket-unix", "mkdir"},
			want:  map[string]string{"threads": "ok", "fork-exec": "ok", "socket-unix": "ok", "mkdir": "ok"}})
	}
	for _, iso := range isolations(t) {
		for _, tt := range tests {
			t.Run(iso.String()+"/"+tt.name, func(t *testing.T) {
				sec, err := ParseSecurityOpts(tt.opts)
				if err != nil {
					t.Fatal(err)
				}
				args := tt.probe
				if args == nil {
					args = probes
				}
				var stdout, stderr bytes.Buffer
				o := Options{
					ContainerID: "seccomp", Rootfs: busyboxRootfs(t), RunDir: t.TempDir(),
					Args: append([]string{"/probe"}, args...), Stdout: &stdout, Stderr: &stderr,
					Isolation: iso, CapAdd: tt.caps, Security: sec,
					Mounts: []specs.Mount{{Destination: "/probe", Type: "bind", Source: probe, Options: []string{"bind", "ro"}}},
				}
				code, err := Run(context.Background(), o)
				if err != nil || code != 0 {
					t.Fatalf("Run = %d, %v (stderr %q)", code, err, stderr.String())
				}
				got := probeResults(t, stdout.String())
				want := map[string]string{}
				for _, p := range args {
					want[p] = tt.want[p]
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("probe results (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// TestSecurityInContainer checks the other --security-opt settings and
// that the chroot isolation's pid 1 stays unfiltered.
func TestSecurityInContainer(t *testing.T) {
	requiresRoot(t)
	notify := filepath.Join(t.TempDir(), "notify.json")
	err := os.WriteFile(notify, []byte(`{"defaultAction": "SCMP_ACT_ALLOW",
		"syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		opts   []string
		args   []string
		stdout string
		code   int
		err    error
		only   string
	}{
		{name: "filter on", args: sh("grep Seccomp: /proc/self/status"), stdout: "Seccomp:\t2\n"},
		{name: "unconfined", opts: []string{"seccomp=unconfined"}, args: sh("grep Seccomp: /proc/self/status"), stdout: "Seccomp:\t0\n"},
		{name: "pid 1 unfiltered", only: "chroot", args: sh("grep Seccomp: /proc/1/status /proc/self/status"),
			stdout: "/proc/1/status:Seccomp:\t0\n/proc/self/status:Seccomp:\t2\n"},
		{name: "no_new_privs off", args: sh("grep NoNewPrivs /proc/self/status"), stdout: "NoNewPrivs:\t0\n"},
		{name: "no_new_privs", opts: []string{"no-new-privileges"}, args: sh("grep NoNewPrivs /proc/self/status"), stdout: "NoNewPrivs:\t1\n"},
		{name: "default masks", args: sh("wc -c < /etc/group; grep -c ' /proc/interrupts ' /proc/self/mountinfo; grep -c ' /proc/sys ' /proc/self/mountinfo"),
			stdout: strconv.Itoa(len(testGroup)) + "\n1\n1\n"},
		{name: "mask and unmask", opts: []string{"mask=/etc/group", "unmask=/proc/interrupts"},
			args:   sh("wc -c < /etc/group; grep -c ' /proc/interrupts ' /proc/self/mountinfo; grep -c ' /proc/sys ' /proc/self/mountinfo"),
			stdout: "0\n0\n1\n"},
		{name: "unmask ALL", opts: []string{"unmask=ALL"},
			args: sh("grep -c ' /proc/interrupts ' /proc/self/mountinfo; grep -c ' /proc/sys ' /proc/self/mountinfo"), code: 1,
			stdout: "0\n0\n"},
		{name: "notify refused", only: "chroot", opts: []string{"seccomp=" + notify}, args: []string{"true"}, code: 125, err: ErrBadSecurityOpt},
	}
	for _, iso := range isolations(t) {
		for _, tt := range tests {
			if tt.only != "" && tt.only != iso.String() {
				continue
			}
			t.Run(iso.String()+"/"+tt.name, func(t *testing.T) {
				sec, err := ParseSecurityOpts(tt.opts)
				if err != nil {
					t.Fatal(err)
				}
				var stdout, stderr bytes.Buffer
				o := Options{
					ContainerID: "security", Rootfs: busyboxRootfs(t), RunDir: t.TempDir(),
					Args: tt.args, Stdout: &stdout, Stderr: &stderr, Isolation: iso, Security: sec,
				}
				code, err := Run(context.Background(), o)
				if !errors.Is(err, tt.err) {
					t.Fatalf("Run error = %v, want %v (stderr %q)", err, tt.err, stderr.String())
				}
				if code != tt.code {
					t.Errorf("exit code = %d, want %d (stderr %q)", code, tt.code, stderr.String())
				}
				if diff := cmp.Diff(tt.stdout, stdout.String()); diff != "" {
					t.Errorf("stdout (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// debootstrapEnv names a Debian root filesystem made with
// "debootstrap --variant=minbase bookworm DIR"; TestDebootstrapBuild runs
// only when it is set, and needs the Debian mirror.
const debootstrapEnv = "KILN_TEST_DEBOOTSTRAP"

// TestDebootstrapBuild does what a Dockerfile's RUN usually does on a
// Debian base, under the default profile and both isolations: apt-get
// update and install (apt's download sandbox, dpkg and its maintainer
// scripts), then a compiler run. The base stays untouched: each run
// works on an overlay over it.
func TestDebootstrapBuild(t *testing.T) {
	base := os.Getenv(debootstrapEnv)
	if base == "" {
		t.Skip("set " + debootstrapEnv + " to a debootstrapped Debian root filesystem")
	}
	requiresRoot(t)
	script := `set -e
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends gcc libc6-dev >/dev/null
dpkg -s gcc | grep '^Status:'
printf '#include <stdio.h>\nint main(void) { puts("hello from gcc"); return 0; }\n' > /tmp/hello.c
gcc -O2 -pthread -o /tmp/hello /tmp/hello.c
/tmp/hello
`
	for _, iso := range isolations(t) {
		t.Run(iso.String(), func(t *testing.T) {
			dir := t.TempDir()
			merged := filepath.Join(dir, "merged")
			for _, d := range []string{"upper", "work", "merged"} {
				if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			opts := "lowerdir=" + base + ",upperdir=" + filepath.Join(dir, "upper") + ",workdir=" + filepath.Join(dir, "work")
			if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { unix.Unmount(merged, unix.MNT_DETACH) })
			var stdout, stderr bytes.Buffer
			start := time.Now()
			code, err := Run(context.Background(), Options{
				ContainerID: "debootstrap", Rootfs: merged, RunDir: t.TempDir(),
				Args: []string{"/bin/sh", "-c", script}, Stdout: &stdout, Stderr: &stderr, Isolation: iso,
			})
			t.Logf("%s: apt-get install gcc and a compile took %v", iso, time.Since(start).Round(time.Second))
			if err != nil || code != 0 {
				t.Fatalf("Run = %d, %v\nstdout:\n%s\nstderr:\n%s", code, err, stdout.String(), stderr.String())
			}
			if want := "Status: install ok installed\nhello from gcc\n"; stdout.String() != want {
				t.Errorf("stdout = %q, want %q (stderr %q)", stdout.String(), want, stderr.String())
			}
		})
	}
}
