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

// startRelay starts relaying. A terminal on stdin is put in raw mode and
// its window size passed on; input from any other file (a pipe,
// /dev/null) is copied as it comes and ended with the pty's end-of-file
// character, so that a command reading it sees its end as it would
// without a pty; with no stdin at all, the command reads end-of-file.
func startRelay(master *os.File, stdin io.Reader, stdout io.Writer) *ttyRelay {
	r := &ttyRelay{master: master, hostFD: -1, outDone: make(chan struct{})}
	f, isFile := stdin.(*os.File)
	switch {
	case isFile && isTerminal(f):
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
		r.copyInput(f, false)
	case isFile:
		r.copyInput(f, true)
	case stdin == nil:
		master.Write([]byte{eofChar})
	default:
		go func() {
			w := &lastByte{w: master}
			io.Copy(w, stdin)
			endInput(master, w.last)
		}()
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

// eofChar is a pty's default end-of-file character (VEOF, ^D).
const eofChar = 4

// copyInput copies f to the master until stop; with sendEOF, the end of
// f is passed on as end-of-file (after ending a partial line, which
// the first ^D only flushes).
func (r *ttyRelay) copyInput(f *os.File, sendEOF bool) {
	wakeR, wakeW, err := os.Pipe()
	if err != nil {
		return
	}
	r.wake = wakeW
	go func() {
		defer wakeR.Close()
		last, eof := copyInput(r.master, rawFD(f), wakeR)
		if sendEOF && eof {
			endInput(r.master, last)
		}
	}()
}

// endInput passes the end of the input on to the pty as end-of-file: a
// ^D, after another one that ends a partial line (its last byte not a
// newline), which the first only flushes.
func endInput(master *os.File, last byte) {
	if last != 0 && last != '\n' {
		master.Write([]byte{eofChar})
	}
	master.Write([]byte{eofChar})
}

// lastByte is a writer that remembers the last byte written through it.
type lastByte struct {
	w    io.Writer
	last byte
}

func (l *lastByte) Write(b []byte) (int, error) {
	n, err := l.w.Write(b)
	if n > 0 {
		l.last = b[n-1]
	}
	return n, err
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

// copyInput copies what arrives on fd to dst until wake becomes
// readable (its write end is closed) or fd ends. It polls rather than
// reads blindly, so it never takes input typed after the run, and it
// leaves the file status flags alone. It returns the last byte copied
// and whether fd ended.
func copyInput(dst *os.File, fd int, wake *os.File) (last byte, eof bool) {
	buf := make([]byte, 32*1024)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(rawFD(wake)), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil || fds[1].Revents != 0 || fds[0].Revents&unix.POLLNVAL != 0 {
			return last, false
		}
		if fds[0].Revents == 0 {
			continue
		}
		n, err := unix.Read(fd, buf)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if n == 0 && err == nil {
			return last, true
		}
		if err != nil || n < 0 {
			return last, false
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return last, false
		}
		last = buf[n-1]
	}
}

// hostConsole is the pty runc gets as its stdin and stdout when kiln's
// stdin is no terminal: `runc run` in the foreground relays the
// container's pty to a terminal of its own and refuses to start without
// one, while Buildah's run --terminal gives the process a pty whatever
// its own stdio is. runc's end is raw, so bytes pass through it as they
// are; kiln relays the other end.
type hostConsole struct {
	slave *os.File
	relay *ttyRelay
}

func newHostConsole(stdin io.Reader, stdout io.Writer) (*hostConsole, error) {
	master, slave, err := openPty(uint32(os.Getuid()), uint32(os.Getgid()))
	if err != nil {
		return nil, err
	}
	if _, err := term.MakeRaw(int(slave.Fd())); err != nil {
		master.Close()
		slave.Close()
		return nil, fmt.Errorf("making the runtime's pty raw: %w", err)
	}
	return &hostConsole{slave: slave, relay: startRelay(master, stdin, stdout)}, nil
}

// finish runs after runc exited: it closes kiln's copy of runc's end, so
// the output copy ends, and stops the relay. A nil *hostConsole is a no-op.
func (h *hostConsole) finish() {
	if h == nil {
		return
	}
	h.slave.Close()
	h.relay.stop()
}
