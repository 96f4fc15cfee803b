package run

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
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
	if errors.Is(err, fs.ErrPermission) {
		return "", fmt.Errorf("%w: %q exists but is not executable: fix its mode, pass another with --runtime, or use --isolation chroot", ErrRuntimeNotFound, name)
	}
	if err != nil {
		return "", fmt.Errorf("%w: %q is not installed or not in PATH: install runc, pass another with --runtime, or use --isolation chroot", ErrRuntimeNotFound, name)
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
// pty itself (given one of kiln's as its own when kiln's stdin is none). The container is always deleted afterwards.
func runOCI(ctx context.Context, p *plan) (int, error) {
	rt, err := findRuntime(p.o.Runtime, p.o)
	if err != nil {
		return 125, err
	}
	stateRoot := filepath.Join(p.o.RunDir, stateDir)
	deleteStale(rt, stateRoot)
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
	args := append(slices.Clone(p.o.Settings.RuntimeArgs), "--root", stateRoot, "--log", logFile, "--log-format", "json", "run", "--bundle", bundle)
	if p.o.NoPivot {
		args = append(args, "--no-pivot")
	}
	cmd := exec.Command(rt, append(args, p.id)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = p.o.Stdin, p.o.Stdout, p.o.Stderr
	var console *hostConsole
	if p.o.Terminal && !isTerminal(p.o.Stdin) {
		if console, err = newHostConsole(p.o.Stdin, p.o.Stdout); err != nil {
			return 125, err
		}
		cmd.Stdin, cmd.Stdout = console.slave, console.slave
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	kill := func() { deleteContainer(rt, stateRoot, p.id) }
	code, err := startAndWait(ctx, cmd, kill)
	console.finish()
	kill()
	// Asked for (--runtime-flag debug), the runtime's own log is shown,
	// as Buildah shows it.
	w := p.o.RuntimeLog
	if w == nil {
		w = p.o.Stderr
	}
	if slices.Contains(p.o.Settings.RuntimeArgs, "--debug") && w != nil {
		if b, rerr := os.ReadFile(logFile); rerr == nil {
			w.Write(textLog(b))
		}
	}
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
	sigs := catchSignals()
	if err := cmd.Start(); err != nil {
		signal.Stop(sigs)
		return 125, err
	}
	stop := forwardSignals(ctx, sigs, cmd.Process, kill)
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

// lockRun holds an exclusive lock on stateRoot/ID.lock while the run
// lasts, so that deleteStale in a concurrent run leaves it alone; the
// kernel drops the lock when kiln dies. unlock removes the lock file and,
// when nothing else uses it, stateRoot.
func lockRun(stateRoot, id string) (unlock func(), err error) {
	if err := os.MkdirAll(stateRoot, 0o700); err != nil {
		return nil, fmt.Errorf("creating runtime state directory: %w", err)
	}
	lockPath := filepath.Join(stateRoot, id+".lock")
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating run lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", lockPath, err)
	}
	return func() {
		os.Remove(lockPath)
		f.Close()
		os.Remove(stateRoot) // only when empty
	}, nil
}

// deleteStale force-deletes containers that a killed kiln left in
// stateRoot: those whose lock file nobody holds.
func deleteStale(rt, stateRoot string) {
	entries, err := os.ReadDir(stateRoot)
	if err != nil {
		return
	}
	for _, e := range entries {
		id := e.Name()
		if !e.IsDir() {
			if lockFree(filepath.Join(stateRoot, id)) && !dirExists(filepath.Join(stateRoot, strings.TrimSuffix(id, ".lock"))) {
				os.Remove(filepath.Join(stateRoot, id))
			}
			continue
		}
		lockPath := filepath.Join(stateRoot, id+".lock")
		if !lockFree(lockPath) {
			continue
		}
		deleteContainer(rt, stateRoot, id)
		os.Remove(lockPath)
	}
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// lockFree reports whether nobody holds the lock file at p (a missing
// file is free).
func lockFree(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return os.IsNotExist(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return false
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return true
}

func deleteContainer(rt, stateRoot, id string) {
	if _, err := os.Stat(filepath.Join(stateRoot, id)); err != nil || rt == "" {
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

// stateDir is the RunDir subdirectory holding the OCI runtime's state and
// every run's lock file.
const stateDir = "runtime-state"

// Cleanup deletes what runs in RunDir runDir left behind when their kiln
// process was killed: OCI containers still running (with their
// processes) and their state, bundles, generated /etc files and chroot
// configs. Runs still alive (their lock is held) are left alone. It is
// safe to call at any time, for example before a working container is
// removed; a missing runDir is not an error.
func Cleanup(runDir string) error {
	stateRoot := filepath.Join(runDir, stateDir)
	if _, err := os.Stat(stateRoot); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if rt, err := findRuntime("runc", Options{}); err == nil {
		deleteStale(rt, stateRoot)
	}
	entries, err := os.ReadDir(runDir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		id, ok := runFileID(e.Name())
		if !ok || !lockFree(filepath.Join(stateRoot, id+".lock")) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(runDir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	deleteStale("", stateRoot) // the dead runs' lock files
	os.Remove(stateRoot)       // only when empty
	return errors.Join(errs...)
}

// runFileID returns the run ID of a file or directory a run made in
// RunDir.
func runFileID(name string) (string, bool) {
	for _, prefix := range []string{"bundle-", "etc-", "chroot-", "overlay-"} {
		if id, ok := strings.CutPrefix(name, prefix); ok {
			return strings.TrimSuffix(id, ".json"), true
		}
	}
	return "", false
}

// textLog turns the runtime's JSON log lines (kiln asks for JSON to read
// its errors) into the text form runc writes by default and Buildah
// shows: time="..." level=debug msg="...".
func textLog(b []byte) []byte {
	var out bytes.Buffer
	for _, line := range bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n")) {
		var e struct{ Time, Level, Msg string }
		if json.Unmarshal(line, &e) != nil || e.Level == "" {
			out.Write(line)
			out.WriteByte('\n')
			continue
		}
		fmt.Fprintf(&out, "time=%q level=%s msg=%q\n", e.Time, e.Level, e.Msg)
	}
	return out.Bytes()
}
