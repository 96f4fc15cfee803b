package run

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/testenv"
)

// testTerminal is a pty pair standing in for the user's terminal: kiln
// gets the slave as stdin and stdout, the test plays the user on the
// master.
type testTerminal struct {
	master, slave *os.File
	mu            sync.Mutex
	out           bytes.Buffer
}

func newTestTerminal(t *testing.T, rows, cols uint16) *testTerminal {
	t.Helper()
	mfd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		testenv.Unavailable(t, "no pty: %v", err)
	}
	master := os.NewFile(uintptr(mfd), "ptmx")
	must(t, unix.IoctlSetPointerInt(mfd, unix.TIOCSPTLCK, 0))
	n, err := unix.IoctlGetInt(mfd, unix.TIOCGPTN)
	must(t, err)
	sfd, err := unix.Open(fmt.Sprintf("/dev/pts/%d", n), unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	must(t, err)
	slave := os.NewFile(uintptr(sfd), "pts")
	tt := &testTerminal{master: master, slave: slave}
	tt.resize(t, rows, cols)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			tt.mu.Lock()
			tt.out.Write(buf[:n])
			tt.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { slave.Close(); master.Close() })
	return tt
}

func (tt *testTerminal) resize(t *testing.T, rows, cols uint16) {
	t.Helper()
	must(t, unix.IoctlSetWinsize(int(tt.master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}))
}

// output returns what the terminal showed so far, with \r\n as \n.
func (tt *testTerminal) output() string {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return strings.ReplaceAll(tt.out.String(), "\r\n", "\n")
}

func (tt *testTerminal) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(tt.output(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("terminal never showed %q; it shows %q", s, tt.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// runOnTerminal runs args with a terminal, in the background; the
// returned channel yields the exit status.
func runOnTerminal(t *testing.T, tt *testTerminal, iso Isolation, user string, args ...string) <-chan int {
	root := busyboxRootfs(t)
	done := make(chan int, 1)
	go func() {
		code, err := Run(context.Background(), Options{
			ContainerID: "tty", Rootfs: root, RunDir: t.TempDir(), Args: args, User: user,
			Stdin: tt.slave, Stdout: tt.slave, Stderr: tt.slave,
			Terminal: true, Isolation: iso,
		})
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		done <- code
	}()
	return done
}

func waitExit(t *testing.T, tt *testTerminal, done <-chan int) int {
	t.Helper()
	select {
	case code := <-done:
		return code
	case <-time.After(20 * time.Second):
		t.Fatalf("the run did not end; terminal shows %q", tt.output())
	}
	return -1
}

// TestTerminal: under both isolations the command gets a pty of the
// container's own devpts as its controlling terminal, owned by its user,
// with kiln's window size; input typed on kiln's terminal reaches it;
// kiln's terminal is raw during the run and restored after.
func TestTerminal(t *testing.T) {
	requiresRoot(t)
	for _, iso := range isolations(t) {
		t.Run(iso.String(), func(t *testing.T) { terminalCase(t, iso) })
	}
}

func terminalCase(t *testing.T, iso Isolation) {
	tt := newTestTerminal(t, 33, 111)
	before, err := unix.IoctlGetTermios(int(tt.slave.Fd()), unix.TCGETS)
	must(t, err)
	done := runOnTerminal(t, tt, iso, "alice", "sh", "-c",
		`tty; stty size; stat -c %u $(tty); test -t 0 -a -t 1 -a -t 2 && echo all-tty; echo ready; read line; echo "got $line"; exit 4`)
	tt.waitFor(t, "ready")
	during, err := unix.IoctlGetTermios(int(tt.slave.Fd()), unix.TCGETS)
	must(t, err)
	if during.Lflag&(unix.ICANON|unix.ECHO) != 0 {
		t.Errorf("kiln's terminal is not raw during the run: lflag %#x", during.Lflag)
	}
	_, err = tt.master.Write([]byte("hello\n"))
	must(t, err)
	if code := waitExit(t, tt, done); code != 4 {
		t.Errorf("exit status = %d, want 4", code)
	}
	tt.waitFor(t, "got hello\n")
	want := "/dev/pts/0\n33 111\n1000\nall-tty\nready\n"
	if got := tt.output(); !strings.HasPrefix(got, want) {
		t.Errorf("terminal shows %q, want it to start with %q", got, want)
	}
	after, err := unix.IoctlGetTermios(int(tt.slave.Fd()), unix.TCGETS)
	must(t, err)
	if after.Lflag != before.Lflag || after.Iflag != before.Iflag || after.Oflag != before.Oflag {
		t.Errorf("kiln's terminal not restored: before %+v, after %+v", before, after)
	}
}

// TestChrootTerminalResize: a SIGWINCH that kiln receives passes the new
// window size on, and the command gets its own SIGWINCH.
func TestChrootTerminalResize(t *testing.T) {
	requiresRoot(t)
	tt := newTestTerminal(t, 24, 80)
	done := runOnTerminal(t, tt, IsolationChroot, "", "sh", "-c",
		`trap 'stty size; exit 0' WINCH; stty size; echo ready; while :; do sleep 0.05; done`)
	tt.waitFor(t, "ready")
	tt.resize(t, 50, 132)
	must(t, syscall.Kill(os.Getpid(), syscall.SIGWINCH))
	if code := waitExit(t, tt, done); code != 0 {
		t.Errorf("exit status = %d, want 0", code)
	}
	tt.waitFor(t, "50 132\n")
	if got, want := tt.output(), "24 80\nready\n50 132\n"; got != want {
		t.Errorf("terminal shows %q, want %q", got, want)
	}
}
