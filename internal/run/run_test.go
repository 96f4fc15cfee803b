package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/testenv"
)

// runCase is one row of the behaviour table, run under both isolations.
type runCase struct {
	name    string
	args    []string
	setup   func(t *testing.T, o *Options, root string) // adjusts options and rootfs
	stdin   string
	code    int
	stdout  string
	stderr  string
	err     error    // wanted sentinel (errors.Is)
	created []string // rootfs paths the run may add
	check   func(t *testing.T, root string)
	only    string // "oci" or "chroot" to run under one isolation
}

func sh(script string) []string { return []string{"sh", "-c", script} }

func mustMount(t *testing.T, parse func(string) (specs.Mount, error), s string) specs.Mount {
	t.Helper()
	m, err := parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// mountOnly is ParseMount's mount, for the mounts that need no store.
func mountOnly(s string) (specs.Mount, error) {
	r, err := ParseMount(s)
	return r.Mount, err
}

func runCases() []runCase {
	return append(processCases(), isolationCases()...)
}

// processCases are about the process: status, stdio, env, user, workdir
// and the command lookup.
func processCases() []runCase {
	return []runCase{
		{name: "exit status", args: sh("exit 7"), code: 7},
		// Under runc sh is pid 1, which cannot kill itself; under chroot
		// kiln is pid 1 and passes the signal out as 128+n.
		{name: "killed by signal", args: sh("kill -9 $$"), code: 137, only: "chroot"},
		{name: "stdout and stderr", args: sh("echo out; echo err >&2"), stdout: "out\n", stderr: "err\n"},
		{name: "stdin", args: []string{"cat"}, stdin: "abc", stdout: "abc"},
		{name: "env", args: sh(`echo "$FOO $HOME $PATH"`),
			setup:  func(t *testing.T, o *Options, _ string) { o.Env = []string{"FOO=bar", "PATH=/bin"} },
			stdout: "bar /root /bin\n"},
		{name: "default workdir", args: []string{"pwd"}, stdout: "/\n"},
		{name: "user by name", args: sh("id -u; id -g; grep Groups /proc/self/status; echo $HOME"),
			setup:  func(t *testing.T, o *Options, _ string) { o.User = "alice" },
			stdout: "1000\n1000\nGroups:\t29 44 \n/home/alice\n"},
		{name: "user uid:gid", args: sh("id -u; id -g; grep Groups /proc/self/status"),
			setup:  func(t *testing.T, o *Options, _ string) { o.User = "1001:44" },
			stdout: "1001\n44\nGroups:\t \n"},
		{name: "user name:group", args: sh("id -u; id -g"),
			setup:  func(t *testing.T, o *Options, _ string) { o.User = "bob:audio" },
			stdout: "1001\n29\n"},
		{name: "numeric user not in passwd", args: sh("id -u; id -g"),
			setup:  func(t *testing.T, o *Options, _ string) { o.User = "4242" },
			stdout: "4242\n0\n"},
		{name: "non-root has no capabilities", args: sh("grep CapEff /proc/self/status"),
			setup:  func(t *testing.T, o *Options, _ string) { o.User = "alice" },
			stdout: "CapEff:\t0000000000000000\n"},
		{name: "unknown user", args: []string{"true"}, code: 125, err: ErrUnknownUser,
			setup: func(t *testing.T, o *Options, _ string) { o.User = "mallory" }},
		{name: "unknown group", args: []string{"true"}, code: 125, err: ErrUnknownUser,
			setup: func(t *testing.T, o *Options, _ string) { o.User = "alice:nogroup" }},
		{name: "workdir created", args: []string{"pwd"}, stdout: "/work/dir\n",
			setup:   func(t *testing.T, o *Options, _ string) { o.WorkingDir = "/work/dir" },
			created: []string{"work", "work/dir"}},
		{name: "workdir is a file", args: []string{"pwd"}, code: 125, err: ErrBadWorkingDir,
			setup: func(t *testing.T, o *Options, _ string) { o.WorkingDir = "/etc/passwd" }},
	}
}

// isolationCases are about namespaces, mounts, capabilities and seccomp.
func isolationCases() []runCase {
	return []runCase{
		{name: "hostname", args: sh("hostname; cat /etc/hostname; grep -c builder /etc/hosts"),
			setup:  func(t *testing.T, o *Options, _ string) { o.Hostname = "builder" },
			stdout: "builder\nbuilder\n1\n"},
		{name: "network none has only lo, up", args: sh("ls /sys/class/net; cat /sys/class/net/lo/flags"),
			setup:  func(t *testing.T, o *Options, _ string) { o.Network = NetworkNone },
			stdout: "lo\n0x9\n"},
		{name: "network private has only lo, up", args: sh("ls /sys/class/net; cat /sys/class/net/lo/flags; ping -c1 -W2 127.0.0.1 >/dev/null && echo ping"),
			setup:  func(t *testing.T, o *Options, _ string) { o.Network = NetworkPrivate },
			stdout: "lo\n0x9\nping\n"},
		{name: "bind mount read-only", args: sh("cat /mnt/ro/f; touch /mnt/ro/x"), code: 1,
			setup:  bindSetup("ro"),
			stdout: "hello\n", stderr: "touch: /mnt/ro/x: Read-only file system\n"},
		{name: "bind mount read-write", args: sh("cat /mnt/ro/f; echo new > /mnt/ro/x"),
			setup: bindSetup("rw"), stdout: "hello\n"},
		{name: "tmpfs mount", args: sh("grep ' /scratch ' /proc/mounts | cut -d' ' -f3; touch /scratch/x"),
			setup: func(t *testing.T, o *Options, _ string) {
				o.Mounts = []specs.Mount{mustMount(t, mountOnly, "type=tmpfs,dst=/scratch,tmpfs-size=1m")}
			},
			stdout: "tmpfs\n"},
		{name: "default caps allow chown", args: sh("touch /tmp/f && chown 1000 /tmp/f && rm /tmp/f")},
		{name: "cap drop CHOWN", args: sh("touch /tmp/f; chown 1000 /tmp/f 2>/dev/null; echo $?; rm /tmp/f"),
			setup:  func(t *testing.T, o *Options, _ string) { o.CapDrop = []string{"chown"} },
			stdout: "1\n"},
		{name: "cap drop ALL", args: sh("grep CapBnd /proc/self/status"),
			setup:  func(t *testing.T, o *Options, _ string) { o.CapDrop = []string{"ALL"}; o.CapAdd = []string{"CAP_KILL"} },
			stdout: "CapBnd:\t0000000000000020\n"},
		{name: "proc masked and read-only paths",
			args:   sh("wc -c < /proc/keys; ls /proc/acpi | wc -l; { echo x > /proc/sysrq-trigger; } 2>/dev/null || echo ro"),
			stdout: "0\n0\nro\n"},
		{name: "symlink mount target stays inside the rootfs", args: sh("echo hi > /evil/x; cat /evil/x"),
			setup: symlinkEscapeSetup, stdout: "hi\n"},
		{name: "seccomp filter", args: sh("grep Seccomp: /proc/self/status"), stdout: "Seccomp:\t2\n"},
		{name: "seccomp denies keyctl", args: []string{"/kiln.test", "-test.run=^TestHelperSeccomp$"},
			setup: seccompSetup, stdout: "operation not permitted\n"},
		{name: "missing command", args: []string{"nosuchcmd"}, code: 127, err: ErrNotFound},
		{name: "missing command by path", args: []string{"/usr/bin/nosuch"}, code: 127, err: ErrNotFound},
		{name: "missing command under a mount", args: []string{"/mnt/ro/nosuch"}, code: 127, err: ErrNotFound,
			setup: bindSetup("ro")},
		{name: "command not executable", args: []string{"/etc/passwd"}, code: 126, err: ErrNotExecutable},
		{name: "absent runtime", args: []string{"true"}, code: 125, err: ErrRuntimeNotFound, only: "oci",
			setup: func(t *testing.T, o *Options, _ string) { o.Runtime = "/nonexistent/runc" }},
		{name: "no pivot", args: []string{"pwd"}, stdout: "/\n",
			setup: func(t *testing.T, o *Options, _ string) { o.NoPivot = true }},
	}
}

func seccompSetup(t *testing.T, o *Options, _ string) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	o.Env = []string{seccompEnv + "=1"}
	o.Mounts = []specs.Mount{{Destination: "/kiln.test", Type: "bind", Source: self, Options: []string{"bind", "ro"}}}
}

const seccompEnv = "KILN_RUN_TEST_SECCOMP"

// TestHelperSeccomp is not a test: the "seccomp denies keyctl" case runs
// it inside a container, where keyctl must fail with EPERM.
func TestHelperSeccomp(t *testing.T) {
	if os.Getenv(seccompEnv) == "" {
		t.Skip("helper process only")
	}
	_, _, errno := unix.Syscall(unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, uintptr(0xfffffffd), 0)
	fmt.Println(errno.Error())
	os.Exit(0)
}

func bindSetup(mode string) func(t *testing.T, o *Options, _ string) {
	return func(t *testing.T, o *Options, _ string) {
		src := t.TempDir()
		if err := os.WriteFile(filepath.Join(src, "f"), []byte("hello\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		o.Mounts = []specs.Mount{mustMount(t, ParseVolume, src+":/mnt/ro:"+mode)}
	}
}

// symlinkEscapeSetup points /evil in the rootfs at a host directory and
// mounts a tmpfs there: the mount must land on <rootfs>/<hostdir>, so the
// host directory stays empty, and what the process writes stays in tmpfs.
func symlinkEscapeSetup(t *testing.T, o *Options, root string) {
	host := t.TempDir()
	if err := os.Symlink(host, filepath.Join(root, "evil")); err != nil {
		t.Fatal(err)
	}
	o.Mounts = []specs.Mount{mustMount(t, mountOnly, "type=tmpfs,target=/evil")}
	t.Cleanup(func() {
		entries, _ := os.ReadDir(host)
		if len(entries) != 0 {
			t.Errorf("host directory %s behind the symlink was written: %v", host, entries)
		}
	})
}

func isolations(t *testing.T) []Isolation {
	isos := []Isolation{IsolationChroot}
	if _, err := exec.LookPath("runc"); err == nil {
		isos = append(isos, IsolationOCI)
	} else if testenv.CI() {
		t.Fatal("runc is not installed: in CI both isolations are tested")
	} else {
		t.Log("runc not in PATH: testing only the chroot isolation")
	}
	return isos
}

func TestRunBehaviour(t *testing.T) {
	requiresRoot(t)
	for _, iso := range isolations(t) {
		t.Run(iso.String(), func(t *testing.T) {
			for _, tc := range runCases() {
				if tc.only != "" && tc.only != iso.String() {
					continue
				}
				t.Run(tc.name, func(t *testing.T) { runOne(t, iso, tc) })
			}
		})
	}
}

func runOne(t *testing.T, iso Isolation, tc runCase) {
	root := busyboxRootfs(t)
	runDir := t.TempDir()
	var stdout, stderr bytes.Buffer
	o := Options{
		ContainerID: "test-" + strings.ReplaceAll(tc.name, " ", "-"),
		Rootfs:      root, RunDir: runDir, Args: tc.args,
		Stdin: strings.NewReader(tc.stdin), Stdout: &stdout, Stderr: &stderr,
		Isolation: iso,
	}
	if tc.setup != nil {
		tc.setup(t, &o, root)
	}
	before, mountsBefore := listTree(t, root), mountTable(t)
	code, err := Run(context.Background(), o)
	if tc.err == nil && err != nil {
		t.Fatalf("Run: %v (stderr %q)", err, stderr.String())
	}
	if tc.err != nil && !errors.Is(err, tc.err) {
		t.Fatalf("Run error = %v, want %v", err, tc.err)
	}
	if code != tc.code {
		t.Errorf("exit code = %d, want %d (err %v, stderr %q)", code, tc.code, err, stderr.String())
	}
	if diff := cmp.Diff(tc.stdout, stdout.String()); diff != "" {
		t.Errorf("stdout (-want +got):\n%s", diff)
	}
	if tc.err == nil {
		if diff := cmp.Diff(tc.stderr, stderr.String()); diff != "" {
			t.Errorf("stderr (-want +got):\n%s", diff)
		}
	}
	after := listTree(t, root)
	for _, c := range tc.created {
		delete(after, c)
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("rootfs changed (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(mountsBefore, mountTable(t)); diff != "" {
		t.Errorf("mount table changed (-before +after):\n%s", diff)
	}
	if entries, _ := os.ReadDir(runDir); len(entries) != 0 {
		t.Errorf("run directory not cleaned: %v", entries)
	}
	if tc.check != nil {
		tc.check(t, root)
	}
}

// listTree maps every path under root to its type and mode.
func listTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = info.Mode().String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// mountTable returns the lines of this process's mount table that
// involve this test's temp directory (as mount point, root or source):
// what a run could leak. Other processes on the machine (other tests, a
// benchmark) mount things concurrently, so the rest is left out.
func mountTable(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	mine := filepath.Dir(t.TempDir())
	var out []string
	for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		if strings.Contains(line, mine) {
			out = append(out, line)
		}
	}
	return out
}
