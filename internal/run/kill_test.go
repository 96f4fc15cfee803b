package run

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/internal/testenv"
)

func TestCancelKillsProcess(t *testing.T) {
	requiresRoot(t)
	for _, iso := range isolations(t) {
		t.Run(iso.String(), func(t *testing.T) {
			root := busyboxRootfs(t)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			code, err := Run(ctx, Options{
				ContainerID: "cancel", Rootfs: root, RunDir: t.TempDir(),
				Args: []string{"sleep", "100"}, Isolation: iso,
			})
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Run error = %v, want %v", err, context.DeadlineExceeded)
			}
			if code == 0 {
				t.Errorf("exit code = 0, want non-zero")
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("Run took %v after cancel", d)
			}
		})
	}
}

const helperEnv = "KILN_RUN_TEST_HELPER"

// TestHelperRun is not a test: TestKillNineLeavesNothing runs the test
// binary with helperEnv set, and it runs one process and blocks.
func TestHelperRun(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("helper process only")
	}
	f := strings.Split(spec, "|")
	iso, _ := ParseIsolation(f[0])
	Run(context.Background(), Options{
		ContainerID: "killed", Rootfs: f[1], RunDir: f[2],
		Args: []string{"sleep", f[3]}, Isolation: iso,
	})
	os.Exit(0)
}

// TestKillNineLeavesNothing kills kiln with SIGKILL during a run: no mount
// may stay in the host mount table, and the process must be gone (chroot:
// at once; oci: at the latest when the next run with the same RunDir
// starts).
func TestKillNineLeavesNothing(t *testing.T) {
	requiresRoot(t)
	for i, iso := range isolations(t) {
		t.Run(iso.String(), func(t *testing.T) {
			root, runDir := busyboxRootfs(t), t.TempDir()
			marker := []string{"7771", "7772"}[i]
			mountsBefore := mountTable(t)
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRun$")
			cmd.Env = append(os.Environ(), helperEnv+"="+strings.Join([]string{iso.String(), root, runDir, marker}, "|"))
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if !waitFor(func() bool { return findProcess("sleep", marker) != 0 }) {
				cmd.Process.Kill()
				t.Fatal("the process did not start")
			}
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			if iso == IsolationOCI {
				// The next run with the same RunDir deletes the stale container.
				Run(context.Background(), Options{Rootfs: root, RunDir: runDir, Args: []string{"true"}, Isolation: iso})
			}
			if !waitFor(func() bool { return findProcess("sleep", marker) == 0 }) {
				t.Errorf("the process outlived kiln")
			}
			if diff := cmp.Diff(mountsBefore, mountTable(t)); diff != "" {
				t.Errorf("mount table changed (-before +after):\n%s", diff)
			}
		})
	}
}

func waitFor(cond func() bool) bool {
	for range 100 {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// findProcess returns the pid of a process whose argv is exactly args.
func findProcess(args ...string) int {
	want := strings.Join(args, "\x00") + "\x00"
	matches, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err == nil && string(b) == want {
			var pid int
			for _, c := range filepath.Base(filepath.Dir(m)) {
				pid = pid*10 + int(c-'0')
			}
			return pid
		}
	}
	return 0
}

// TestSharedRunDir runs two processes at once with one RunDir: the second
// run's stale-container cleanup must not touch the first, running one.
func TestSharedRunDir(t *testing.T) {
	requiresRoot(t)
	for _, iso := range isolations(t) {
		t.Run(iso.String(), func(t *testing.T) {
			root, runDir := busyboxRootfs(t), t.TempDir()
			o := Options{ContainerID: "shared", Rootfs: root, RunDir: runDir, Isolation: iso}
			long := o
			long.Args = []string{"sh", "-c", "sleep 1; exit 5"}
			done := make(chan int)
			go func() {
				code, err := Run(context.Background(), long)
				if err != nil {
					t.Errorf("long run: %v", err)
				}
				done <- code
			}()
			time.Sleep(300 * time.Millisecond)
			short := o
			short.Args = []string{"true"}
			if code, err := Run(context.Background(), short); code != 0 || err != nil {
				t.Errorf("short run = %d, %v", code, err)
			}
			if code := <-done; code != 5 {
				t.Errorf("long run exit code = %d, want 5", code)
			}
			if entries, _ := os.ReadDir(runDir); len(entries) != 0 {
				t.Errorf("run directory not cleaned: %v", entries)
			}
		})
	}
}

// TestCleanupAfterKill: Cleanup ends the OCI container a killed kiln left
// running, without a new run.
func TestCleanupAfterKill(t *testing.T) {
	requiresRoot(t)
	testenv.NeedBinary(t, "runc")
	root, runDir := busyboxRootfs(t), t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRun$")
	cmd.Env = append(os.Environ(), helperEnv+"="+strings.Join([]string{"oci", root, runDir, "7773"}, "|"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if !waitFor(func() bool { return findProcess("sleep", "7773") != 0 }) {
		cmd.Process.Kill()
		t.Fatal("the process did not start")
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if err := Cleanup(runDir); err != nil {
		t.Fatal(err)
	}
	if !waitFor(func() bool { return findProcess("sleep", "7773") == 0 }) {
		t.Errorf("the container's process outlived Cleanup")
	}
	if entries, _ := os.ReadDir(runDir); len(entries) != 0 {
		t.Errorf("run directory not cleaned: %v", entries)
	}
}
