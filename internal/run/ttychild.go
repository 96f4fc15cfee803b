package run

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// The chroot isolation's terminal works like runc's: the child allocates
// the pty inside the container, from the container's own devpts instance,
// so the command sees /dev/pts/0 and /dev/tty; it sends the master to kiln
// over a unix socket (SCM_RIGHTS) and keeps the slave as the command's
// stdin, stdout, stderr and controlling terminal.

// consoleSocketFD is the child's end of the socket the pty master is sent
// on; it is passed only when the run has a terminal.
const consoleSocketFD = 5

// openPty opens a new pty pair in the container's /dev/pts (the caller has
// entered the root filesystem) and makes uid:gid own the slave, as runc
// does for the process's stdio.
func openPty(uid, gid uint32) (master, slave *os.File, err error) {
	mfd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("opening /dev/ptmx in the container: %w", err)
	}
	master = os.NewFile(uintptr(mfd), "/dev/ptmx")
	if err := unix.IoctlSetPointerInt(mfd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("unlocking the pty: %w", err)
	}
	n, err := unix.IoctlGetInt(mfd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("reading the pty number: %w", err)
	}
	sfd, err := unix.Open(fmt.Sprintf("/dev/pts/%d", n), unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("opening the pty slave: %w", err)
	}
	slave = os.NewFile(uintptr(sfd), "/dev/pts")
	if err := unix.Fchown(sfd, int(uid), int(gid)); err != nil {
		master.Close()
		slave.Close()
		return nil, nil, fmt.Errorf("giving the pty to the process's user: %w", err)
	}
	return master, slave, nil
}

// sendConsole allocates the pty, sends its master to kiln and returns the
// slave for the command.
func sendConsole(cfg *childConfig) (*os.File, error) {
	sock := os.NewFile(consoleSocketFD, "console-socket")
	defer sock.Close()
	unix.CloseOnExec(consoleSocketFD)
	master, slave, err := openPty(cfg.UID, cfg.GID)
	if err != nil {
		return nil, err
	}
	defer master.Close()
	if b := cfg.ConsoleSize; b != nil {
		// Before the command starts, as runc does with process.consoleSize.
		ws := &unix.Winsize{Row: uint16(b.Height), Col: uint16(b.Width)}
		if err := unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, ws); err != nil {
			slave.Close()
			return nil, fmt.Errorf("setting the pty's window size: %w", err)
		}
	}
	rights := unix.UnixRights(int(master.Fd()))
	if err := unix.Sendmsg(consoleSocketFD, []byte{0}, rights, nil, 0); err != nil {
		slave.Close()
		return nil, fmt.Errorf("sending the pty to kiln: %w", err)
	}
	return slave, nil
}
