package run

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const nestedEnv = "KILN_RUN_TEST_NESTED"

// TestHelperNested is not a test: TestNestedChroot runs the test binary
// inside a container, where it runs one command with the chroot isolation.
func TestHelperNested(t *testing.T) {
	spec := os.Getenv(nestedEnv)
	if spec == "" {
		t.Skip("helper process only")
	}
	rootfs, rest, _ := strings.Cut(spec, "|")
	runDir, noPivot, _ := strings.Cut(rest, "|")
	code, err := Run(context.Background(), Options{
		ContainerID: "inner", Rootfs: rootfs, RunDir: runDir, Hostname: "inner", NoPivot: noPivot == "nopivot",
		Args:   []string{"sh", "-c", "echo nested $(hostname) $(id -u alice); ls /proc/1/cmdline"},
		User:   "alice",
		Stdout: os.Stdout, Stderr: os.Stderr, Isolation: IsolationChroot,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "inner run:", err)
	}
	os.Exit(code)
}

// TestNestedChroot runs kiln (the test binary) inside a container made by
// each isolation, with the inner root filesystem on a bind-mounted volume,
// and has it use the chroot isolation there: the "build inside a
// container" workflow. The outer container has every capability and
// either no seccomp filter (docker run --cap-add SYS_ADMIN --security-opt
// seccomp=unconfined) or Docker's default profile, which allows mount but
// not pivot_root, so the inner run uses --no-pivot.
func TestNestedChroot(t *testing.T) {
	requiresRoot(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	outers := []struct {
		name  string
		sec   Security
		inner string
	}{
		{"unconfined", Security{SeccompUnconfined: true}, "pivot"},
		{"default seccomp", Security{}, "nopivot"},
	}
	for _, iso := range isolations(t) {
		for _, oc := range outers {
			t.Run(iso.String()+"/"+oc.name, func(t *testing.T) {
				outer, inner := busyboxRootfs(t), busyboxRootfs(t)
				var stdout, stderr bytes.Buffer
				code, err := Run(context.Background(), Options{
					ContainerID: "outer", Rootfs: outer, RunDir: t.TempDir(),
					Args: []string{"/kiln.test", "-test.run=^TestHelperNested$"},
					Env:  []string{nestedEnv + "=/store/rootfs|/tmp/rundir|" + oc.inner},
					Mounts: []specs.Mount{
						{Destination: "/kiln.test", Type: "bind", Source: self, Options: []string{"bind", "ro"}},
						{Destination: "/store/rootfs", Type: "bind", Source: inner, Options: []string{"rbind", "rw"}},
					},
					CapAdd: []string{"ALL"}, Security: oc.sec, Stdout: &stdout, Stderr: &stderr, Isolation: iso,
				})
				if err != nil || code != 0 {
					t.Fatalf("Run = %d, %v; stderr:\n%s", code, err, stderr.String())
				}
				if got, want := stdout.String(), "nested inner 1000\n/proc/1/cmdline\n"; got != want {
					t.Errorf("stdout = %q, want %q", got, want)
				}
			})
		}
	}
}
