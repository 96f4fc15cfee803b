package run

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// Reexec runs the chroot isolation's child: it sets up the root filesystem
// in the new namespaces, runs the command as pid 1's only child, reaps
// every process that ends up with pid 1, and returns the command's exit
// status (128+n for a signal), or 125/126/127 after reporting why the
// command could not start.
func Reexec() int {
	if os.Args[0] == netnsArg0 {
		return holdNetns()
	}
	runtime.LockOSThread()
	cfgFile, report := os.NewFile(3, "config"), os.NewFile(4, "report")
	unix.CloseOnExec(3)
	unix.CloseOnExec(4)
	fail := func(kind string, err error, code int) int {
		b, _ := json.Marshal(childError{Kind: kind, Msg: err.Error()})
		report.Write(b)
		report.Close()
		return code
	}
	var cfg childConfig
	if err := json.NewDecoder(cfgFile).Decode(&cfg); err != nil {
		return fail("", fmt.Errorf("reading chroot isolation config: %w", err), 125)
	}
	if cfg.NetNSFD != 0 {
		unix.CloseOnExec(cfg.NetNSFD)
	}
	cfgFile.Close()
	err := setupChild(&cfg)
	if err != nil {
		return fail("", err, 125)
	}
	var console *os.File
	if cfg.Terminal {
		if console, err = sendConsole(&cfg); err != nil {
			return fail("", err, 125)
		}
	}
	// Catch before starting, so the command does not inherit a SIGINT
	// that kiln was started with ignored.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH)
	proc, err := startCommand(&cfg, console)
	if console != nil {
		console.Close()
	}
	if err != nil {
		switch {
		case errors.Is(err, ErrNotFound):
			return fail("notfound", err, 127)
		case errors.Is(err, ErrNotExecutable):
			return fail("notexec", err, 126)
		}
		return fail("", err, 125)
	}
	report.Close()
	return reap(proc.Pid, sigs)
}

// setupChild prepares the namespaces and enters the root filesystem.
func setupChild(cfg *childConfig) error {
	if err := setupMounts(cfg); err != nil {
		return err
	}
	if !cfg.HostUTS {
		if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
			return fmt.Errorf("setting hostname: %w", err)
		}
	}
	if err := setRlimits(cfg.Rlimits); err != nil {
		return err
	}
	if cfg.NewNet {
		if err := loopbackUp(); err != nil {
			return fmt.Errorf("bringing up the loopback interface: %w", err)
		}
	}
	return enterRoot(cfg.Rootfs, cfg.NoPivot)
}

// startCommand starts the command with the configured credentials,
// working directory and environment. With a console (the pty slave) the
// command gets it as stdin, stdout, stderr and controlling terminal, in a
// session of its own.
//
// Capabilities, no_new_privs and the seccomp filter belong to a thread,
// and a forked process inherits its thread's: the command is forked from
// a thread of its own that sets them up first and then ends (a goroutine
// that exits while locked to its thread takes the thread with it, and Go
// never clones new threads from a locked one). pid 1 keeps its
// capabilities and runs unfiltered, so no profile can break the reaper.
func startCommand(cfg *childConfig, console *os.File) (*os.Process, error) {
	root, err := openRoot("/")
	if err != nil {
		return nil, err
	}
	exe, err := lookPathInRoot(root, cfg.Args[0], cfg.Cwd, cfg.Env)
	root.Close()
	if err != nil {
		return nil, err
	}
	type started struct {
		proc *os.Process
		err  error
	}
	done := make(chan started, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		proc, err := forkCommand(cfg, exe, console)
		done <- started{proc, err}
	}()
	s := <-done
	return s.proc, s.err
}

// forkCommand sets up the calling thread's privileges and starts exe.
func forkCommand(cfg *childConfig, exe string, console *os.File) (*os.Process, error) {
	if cfg.NetNSFD != 0 {
		// This thread alone joins the network; the command inherits it.
		if err := unix.Setns(cfg.NetNSFD, unix.CLONE_NEWNET); err != nil {
			return nil, fmt.Errorf("joining the run's network namespace: %w", err)
		}
	}
	if err := dropCapabilities(cfg.Caps); err != nil {
		return nil, err
	}
	if cfg.NoNewPrivs {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return nil, fmt.Errorf("setting no_new_privs: %w", err)
		}
	}
	if err := installSeccomp(cfg.Seccomp); err != nil {
		return nil, err
	}
	groups := make([]uint32, len(cfg.Groups))
	copy(groups, cfg.Groups)
	attr := &os.ProcAttr{
		Dir:   cfg.Cwd,
		Env:   cfg.Env,
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Sys: &syscall.SysProcAttr{
			Credential: &syscall.Credential{Uid: cfg.UID, Gid: cfg.GID, Groups: groups},
		},
	}
	if console != nil {
		attr.Files = []*os.File{console, console, console}
		attr.Sys.Setsid, attr.Sys.Setctty, attr.Sys.Ctty = true, true, 0
	}
	proc, err := os.StartProcess(exe, cfg.Args, attr)
	if err != nil {
		switch {
		case errors.Is(err, unix.ENOENT):
			return nil, fmt.Errorf("starting %q: %w: %w", cfg.Args[0], ErrNotFound, err)
		case errors.Is(err, unix.EACCES), errors.Is(err, unix.ENOEXEC), errors.Is(err, unix.EISDIR):
			return nil, fmt.Errorf("starting %q: %w: %w", cfg.Args[0], ErrNotExecutable, err)
		}
		return nil, fmt.Errorf("starting %q: %w", cfg.Args[0], err)
	}
	return proc, nil
}

// reap forwards signals to the command and, as pid 1, waits for every
// child until the command exits; its status is returned.
func reap(main int, sigs chan os.Signal) int {
	go func() {
		for s := range sigs {
			_ = syscall.Kill(main, s.(syscall.Signal))
		}
	}()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 125
		}
		if pid != main {
			continue
		}
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ws.ExitStatus()
	}
}

// loopbackUp sets the lo interface up in the new network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// dropCapabilities limits the calling thread's bounding set to keep and
// clears its inheritable and ambient sets. The thread keeps its effective
// set, so it can still switch to the target user and load the seccomp
// filter; the command gets the bounding set when it runs as root and
// nothing otherwise, as under runc.
func dropCapabilities(keep []string) error {
	mask := capMask(keep)
	for i := range capNames {
		if mask&(1<<uint(i)) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(i), 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("dropping capability %s: %w", capNames[i], err)
		}
	}
	_ = unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("reading capabilities: %w", err)
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("setting capabilities: %w", err)
	}
	return nil
}
