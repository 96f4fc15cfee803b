package run

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// Kiln's side of the chroot isolation's terminal, after runc's terminal
// mode: receive the pty master from the child, put kiln's terminal in raw
// mode, copy stdin to the master and the master to stdout, and pass the
// window size on at the start and on every SIGWINCH.

// consoleSocket returns the two ends of the socket the child sends the
// pty master on.
func consoleSocket() (parent, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("creating the console socket: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "console-socket"), os.NewFile(uintptr(fds[1]), "console-socket-child"), nil
}

// recvConsole waits for the pty master on sock; it fails when the child
// closes its end without sending one.
func recvConsole(sock *os.File) (*os.File, error) {
	buf, oob := make([]byte, 1), make([]byte, unix.CmsgSpace(4))
	for {
		_, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("receiving the pty: %w", err)
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			return nil, errors.New("receiving the pty: the child sent none")
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			return nil, errors.New("receiving the pty: the child sent none")
		}
		if err := unix.SetNonblock(fds[0], true); err != nil {
			unix.Close(fds[0])
			return nil, err
		}
		return os.NewFile(uintptr(fds[0]), "pty-master"), nil
	}
}

// ttyRelay copies between kiln's terminal and the pty master while the
// command runs.
type ttyRelay struct {
	master  *os.File
	hostFD  int
	wake    *os.File // closed to stop copying input
	restore *term.State
	outDone chan struct{}
	winch   chan os.Signal
}

// startRelay starts relaying; stdin is the host terminal (prepare turns
// Terminal off when it is not one).
func startRelay(master *os.File, stdin io.Reader, stdout io.Writer) *ttyRelay {
	r := &ttyRelay{master: master, hostFD: -1, outDone: make(chan struct{})}
	if f, ok := stdin.(*os.File); ok && isTerminal(f) {
		r.hostFD = rawFD(f)
		r.resize()
		r.restore, _ = term.MakeRaw(r.hostFD)
		r.winch = make(chan os.Signal, 1)
		signal.Notify(r.winch, syscall.SIGWINCH)
		go func() {
			for range r.winch {
				r.resize()
			}
		}()
		if wakeR, wakeW, err := os.Pipe(); err == nil {
			r.wake = wakeW
			go func() {
				copyInput(master, r.hostFD, wakeR)
				wakeR.Close()
			}()
		}
	}
	if stdout == nil {
		stdout = io.Discard
	}
	go func() {
		io.Copy(stdout, master) // ends with EIO once the last slave is closed
		close(r.outDone)
	}()
	return r
}

// resize gives the pty the host terminal's window size.
func (r *ttyRelay) resize() {
	ws, err := unix.IoctlGetWinsize(r.hostFD, unix.TIOCGWINSZ)
	if err != nil {
		return
	}
	_ = unix.IoctlSetWinsize(int(r.master.Fd()), unix.TIOCSWINSZ, ws)
}

// stop waits (boundedly) for the output the command left in the pty, then
// restores the host terminal and stops relaying. The command has exited.
func (r *ttyRelay) stop() {
	select {
	case <-r.outDone:
	case <-time.After(2 * time.Second):
	}
	r.master.Close()
	if r.winch != nil {
		signal.Stop(r.winch)
		close(r.winch)
	}
	if r.wake != nil {
		r.wake.Close()
	}
	if r.restore != nil {
		term.Restore(r.hostFD, r.restore)
	}
}

// rawFD returns f's descriptor without File.Fd's side effect of making it
// blocking.
func rawFD(f *os.File) int {
	fd := -1
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(u uintptr) { fd = int(u) })
	}
	if fd < 0 {
		fd = int(f.Fd())
	}
	return fd
}

// copyInput copies what arrives on the host terminal fd to dst until wake
// becomes readable (its write end is closed). It polls rather than reads
// blindly, so it never takes input typed after the run, and it leaves the
// terminal's file status flags alone.
func copyInput(dst *os.File, fd int, wake *os.File) {
	buf := make([]byte, 32*1024)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(rawFD(wake)), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil || fds[1].Revents != 0 || fds[0].Revents&unix.POLLNVAL != 0 {
			return
		}
		if fds[0].Revents == 0 {
			continue
		}
		n, err := unix.Read(fd, buf)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}
