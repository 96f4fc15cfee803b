package run

import (
	"context"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testenv"
)

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSignalsForwarded sends SIGINT and SIGTERM to kiln (this test
// process) while a command runs: the command gets them. kiln starts with
// SIGINT ignored, as the CLI and a shell's background job do, and the
// command must still see it with its default action (the chroot
// isolation, where the command is not pid 1, shows it by dying of it).
func TestSignalsForwarded(t *testing.T) {
	requiresRoot(t)
	// Whatever arrives outside a Run must not kill the test binary.
	guard := make(chan os.Signal, 4)
	signal.Notify(guard, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(guard)
	trapped := `trap "echo got-$SIG; exit 42" $SIG; echo ready; while :; do sleep 0.05; done`
	cases := []struct {
		name string
		iso  Isolation
		sig  syscall.Signal
		args []string
		code int
	}{
		{"chroot SIGINT to a trap", IsolationChroot, syscall.SIGINT, sh(strings.ReplaceAll(trapped, "$SIG", "INT")), 42},
		{"chroot SIGTERM to a trap", IsolationChroot, syscall.SIGTERM, sh(strings.ReplaceAll(trapped, "$SIG", "TERM")), 42},
		{"chroot SIGINT default action", IsolationChroot, syscall.SIGINT, sh("echo ready; exec sleep 30"), 130},
		{"oci SIGINT to a trap", IsolationOCI, syscall.SIGINT, sh(strings.ReplaceAll(trapped, "$SIG", "INT")), 42},
		{"oci SIGTERM to a trap", IsolationOCI, syscall.SIGTERM, sh(strings.ReplaceAll(trapped, "$SIG", "TERM")), 42},
	}
	isos := isolations(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.iso == IsolationOCI && len(isos) == 1 {
				testenv.Unavailable(t, "runc is not installed")
			}
			signal.Ignore(syscall.SIGINT)
			defer signal.Notify(guard, syscall.SIGINT)
			var out lockedBuffer
			done := make(chan int, 1)
			go func() {
				code, err := Run(context.Background(), Options{
					ContainerID: "sig", Rootfs: busyboxRootfs(t), RunDir: t.TempDir(),
					Args: tc.args, Stdout: &out, Stderr: &out, Isolation: tc.iso,
				})
				if err != nil {
					t.Errorf("Run: %v", err)
				}
				done <- code
			}()
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(out.String(), "ready") && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if err := syscall.Kill(os.Getpid(), tc.sig); err != nil {
				t.Fatal(err)
			}
			select {
			case code := <-done:
				if code != tc.code {
					t.Errorf("exit status = %d, want %d (output %q)", code, tc.code, out.String())
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("the command did not end on %v (output %q)", tc.sig, out.String())
			}
		})
	}
}
