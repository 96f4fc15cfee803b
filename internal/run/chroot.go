package run

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const (
	reexecArg0 = "kiln-run-chroot"
	reexecEnv  = "_KILN_RUN_CHROOT"
)

// childConfig is what the chroot isolation's child needs, sent as JSON
// on file descriptor 3.
type childConfig struct {
	Rootfs           string
	Args             []string
	Env              []string
	Cwd              string
	UID, GID         uint32
	Groups           []uint32
	Caps             []string
	Seccomp          *seccompProgram // nil: no filter
	NoNewPrivs       bool
	Masked, Readonly []string
	Hostname         string
	NewNet           bool
	NetNSFD          int // a network namespace to join (a rootless private network); 0 for none
	Mounts           []specs.Mount
	NoPivot          bool
	Terminal         bool       // a pty master is sent on consoleSocketFD
	ConsoleSize      *specs.Box // the pty's window size from the start
	Rlimits          []specs.POSIXRlimit
	ShmSize          int64 // bytes; 0 is 64 MiB
	HostUTS          bool  // the host's UTS namespace: the hostname is not set
}

// childError is what the child reports on file descriptor 4 when it could
// not start the command.
type childError struct {
	Kind string // "notfound", "notexec" or ""
	Msg  string
}

// IsReexec reports whether this process is the chroot isolation's child,
// started by Run. main must call it before anything else and, when it is
// true, exit with Reexec's status.
func IsReexec() bool {
	return len(os.Args) > 0 && (os.Args[0] == reexecArg0 || os.Args[0] == netnsArg0) && os.Getenv(reexecEnv) == "1"
}

// runChroot re-executes this binary into new namespaces; the child sets up
// the root filesystem, becomes pid 1 of the new pid namespace, runs the
// command and exits with its status.
func runChroot(ctx context.Context, p *plan) (int, error) {
	cfgPath := filepath.Join(p.o.RunDir, "chroot-"+p.id+".json")
	if err := p.writeChildConfig(cfgPath); err != nil {
		return 125, err
	}
	p.runFiles = append(p.runFiles, cfgPath)
	cfgFile, err := os.Open(cfgPath)
	if err != nil {
		return 125, err
	}
	defer cfgFile.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		return 125, err
	}
	defer errR.Close()
	cmd := p.chrootCommand(cfgFile, errW)
	var console *consoleWait
	if p.o.Terminal {
		if console, err = waitConsole(cmd, p.o); err != nil {
			errW.Close()
			return 125, err
		}
	}
	if p.net != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, p.net.ns) // netnsFD(p)
	}
	var report []byte
	readDone := make(chan struct{})
	go func() {
		report, _ = io.ReadAll(io.LimitReader(errR, 1<<20))
		close(readDone)
	}()
	kill := func() {
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
		}
	}
	code, err := startAndWait(ctx, cmd, kill)
	errW.Close()
	console.finish()
	<-readDone
	if err != nil {
		return code, fmt.Errorf("running chroot isolation: %w", err)
	}
	if len(report) > 0 {
		return code, decodeChildError(report)
	}
	return code, nil
}

// chrootCommand is the re-executed child, with the config on fd 3 and the
// report pipe on fd 4.
func (p *plan) chrootCommand(cfgFile, report *os.File) *exec.Cmd {
	flags := p.o.Settings.chrootCloneFlags()
	if p.newNet && p.net == nil {
		flags |= syscall.CLONE_NEWNET
	}
	cmd := &exec.Cmd{
		Path:       "/proc/self/exe",
		Args:       []string{reexecArg0},
		Env:        []string{reexecEnv + "=1"},
		Stdin:      p.o.Stdin,
		Stdout:     p.o.Stdout,
		Stderr:     p.o.Stderr,
		ExtraFiles: []*os.File{cfgFile, report},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: uintptr(flags),
			Pdeathsig:  syscall.SIGKILL,
		},
		WaitDelay: 5 * time.Second,
	}
	if p.o.Terminal {
		// The command talks to the pty only; the child keeps stderr for
		// a crash report.
		cmd.Stdin, cmd.Stdout = nil, nil
	}
	return cmd
}

// consoleWait receives the pty master from the child and relays it.
type consoleWait struct {
	parent, child *os.File
	relay         chan *ttyRelay
}

// waitConsole adds the console socket to cmd as fd 5 and starts waiting
// for the pty master.
func waitConsole(cmd *exec.Cmd, o Options) (*consoleWait, error) {
	parent, child, err := consoleSocket()
	if err != nil {
		return nil, err
	}
	cmd.ExtraFiles = append(cmd.ExtraFiles, child)
	c := &consoleWait{parent: parent, child: child, relay: make(chan *ttyRelay, 1)}
	go func() {
		master, err := recvConsole(parent)
		if err != nil {
			c.relay <- nil
			return
		}
		c.relay <- startRelay(master, o.Stdin, o.Stdout)
	}()
	return c, nil
}

// finish runs after the child exited: it stops the relay and closes the
// socket. It is a no-op on a nil *consoleWait.
func (c *consoleWait) finish() {
	if c == nil {
		return
	}
	c.child.Close() // the child is gone: a receive still waiting ends now
	if r := <-c.relay; r != nil {
		r.stop()
	}
	c.parent.Close()
}

func (p *plan) writeChildConfig(file string) error {
	cfg := childConfig{
		Rootfs: p.o.Rootfs, Args: p.o.Args, Env: p.env, Cwd: p.cwd,
		UID: p.user.UID, GID: p.user.GID, Groups: p.user.Groups,
		Caps: p.caps, Seccomp: p.seccompProg, NoNewPrivs: p.o.Security.NoNewPrivileges,
		Masked: p.masked, Readonly: p.readonly, Hostname: p.hostname, NewNet: p.newNet && p.net == nil,
		Mounts: p.mounts, NoPivot: p.o.NoPivot, Terminal: p.o.Terminal, ConsoleSize: p.consoleSize,
		Rlimits: p.o.Settings.Rlimits, ShmSize: p.o.Settings.ShmSize, HostUTS: p.o.Settings.HostUTS,
	}
	if p.net != nil {
		cfg.NetNSFD = netnsFD(p)
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	if err := os.WriteFile(file, b, 0o600); err != nil {
		return fmt.Errorf("writing chroot isolation config: %w", err)
	}
	return nil
}

// netnsFD is the child's descriptor of the network namespace to join:
// after the config (3), the report (4) and the console socket (5, with a
// terminal).
func netnsFD(p *plan) int {
	if p.o.Terminal {
		return 6
	}
	return 5
}

func decodeChildError(b []byte) error {
	var ce childError
	if err := json.Unmarshal(b, &ce); err != nil {
		return fmt.Errorf("chroot isolation: unreadable report %q", b)
	}
	switch ce.Kind {
	case "notfound":
		return fmt.Errorf("%s: %w", ce.Msg, ErrNotFound)
	case "notexec":
		return fmt.Errorf("%s: %w", ce.Msg, ErrNotExecutable)
	}
	return errors.New(ce.Msg)
}
