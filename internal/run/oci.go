package run

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// findRuntime resolves the OCI runtime binary. crun on a host with the
// hybrid cgroup layout does not work, so runc is used instead when present.
func findRuntime(name string, o Options) (string, error) {
	if name == "" {
		name = "runc"
	}
	rt, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("oci runtime %q: %w: install runc or use --isolation chroot", name, ErrRuntimeNotFound)
	}
	if filepath.Base(rt) == "crun" && hybridCgroups() {
		runc, rerr := exec.LookPath("runc")
		if rerr != nil {
			return "", fmt.Errorf("crun does not work with this host's hybrid cgroup layout: install runc or use --isolation chroot")
		}
		if o.Logger != nil {
			o.Logger.Warn("crun does not work with this host's hybrid cgroup layout; using runc", "runc", runc)
		}
		return runc, nil
	}
	return rt, nil
}

// hybridCgroups reports the cgroup v1 layout with cgroup2 at
// /sys/fs/cgroup/unified.
func hybridCgroups() bool {
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &st) != nil || st.Type == unix.CGROUP2_SUPER_MAGIC {
		return false
	}
	return unix.Statfs("/sys/fs/cgroup/unified", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// runOCI writes the bundle and runs it with the OCI runtime in the
// foreground; runc passes stdio through and, with a terminal, allocates a
// pty itself. The container is always deleted afterwards.
func runOCI(ctx context.Context, p *plan) (int, error) {
	rt, err := findRuntime(p.o.Runtime, p.o)
	if err != nil {
		return 125, err
	}
	stateRoot := filepath.Join(p.o.RunDir, "runtime-state")
	deleteStale(rt, stateRoot)
	defer os.Remove(stateRoot) // only when empty: nothing else is running
	bundle := filepath.Join(p.o.RunDir, "bundle-"+p.id)
	if err := os.Mkdir(bundle, 0o700); err != nil {
		return 125, fmt.Errorf("creating bundle directory: %w", err)
	}
	p.runFiles = append(p.runFiles, bundle)
	cfg, err := json.MarshalIndent(p.ociSpec(), "", "\t")
	if err != nil {
		return 125, err
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), cfg, 0o600); err != nil {
		return 125, fmt.Errorf("writing bundle config: %w", err)
	}
	logFile := filepath.Join(bundle, "runtime.log")
	args := []string{"--root", stateRoot, "--log", logFile, "--log-format", "json", "run", "--bundle", bundle}
	if p.o.NoPivot {
		args = append(args, "--no-pivot")
	}
	cmd := exec.Command(rt, append(args, p.id)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = p.o.Stdin, p.o.Stdout, p.o.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	kill := func() { deleteContainer(rt, stateRoot, p.id) }
	code, err := startAndWait(ctx, cmd, kill)
	kill()
	if err != nil {
		return code, fmt.Errorf("running %s: %w", filepath.Base(rt), err)
	}
	if code != 0 {
		if rerr := runtimeError(logFile); rerr != nil {
			return statusFor(rerr), rerr
		}
	}
	return code, nil
}

// startAndWait starts cmd on a locked OS thread (the parent-death signal
// is tied to the thread), forwards SIGINT, SIGTERM, SIGHUP and SIGQUIT to
// it, calls kill when ctx ends, and returns the exit status (128+n for a
// signal).
func startAndWait(ctx context.Context, cmd *exec.Cmd, kill func()) (int, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cmd.Start(); err != nil {
		return 125, err
	}
	stop := forwardSignals(ctx, cmd.Process, kill)
	err := cmd.Wait()
	stop()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return 125, err
	}
	code := exitCode(cmd.ProcessState)
	if ctx.Err() != nil {
		return code, ctx.Err()
	}
	return code, nil
}

func exitCode(ps *os.ProcessState) int {
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if !ok {
		return ps.ExitCode()
	}
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// deleteStale force-deletes containers a killed kiln left in stateRoot.
func deleteStale(rt, stateRoot string) {
	entries, err := os.ReadDir(stateRoot)
	if err != nil {
		return
	}
	for _, e := range entries {
		deleteContainer(rt, stateRoot, e.Name())
	}
}

func deleteContainer(rt, stateRoot, id string) {
	if _, err := os.Stat(filepath.Join(stateRoot, id)); err != nil {
		return
	}
	cmd := exec.Command(rt, "--root", stateRoot, "delete", "--force", id)
	cmd.WaitDelay = 5 * time.Second
	_ = cmd.Run()
}

// runtimeError returns the runtime's own error from its JSON log, mapped
// to ErrNotFound or ErrNotExecutable when it is about the command.
func runtimeError(logFile string) error {
	f, err := os.Open(logFile)
	if err != nil {
		return nil
	}
	defer f.Close()
	var msg string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		var entry struct{ Level, Msg string }
		if json.Unmarshal(sc.Bytes(), &entry) == nil && (entry.Level == "error" || entry.Level == "fatal") {
			msg = entry.Msg
		}
	}
	if msg == "" {
		return nil
	}
	switch {
	case strings.Contains(msg, "exec:") && (strings.Contains(msg, "not found") || strings.Contains(msg, "no such file")):
		return fmt.Errorf("oci runtime: %s: %w", msg, ErrNotFound)
	case strings.Contains(msg, "exec:") && strings.Contains(msg, "permission denied"):
		return fmt.Errorf("oci runtime: %s: %w", msg, ErrNotExecutable)
	}
	return fmt.Errorf("oci runtime: %s", msg)
}
