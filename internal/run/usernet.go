package run

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kiln-build/kiln/internal/idmap"
)

// A rootless kiln's private network: the process gets a network namespace
// of its own, connected to the outside by pasta or, failing that,
// slirp4netns (user-mode networking, as rootless Podman and Buildah do),
// when either is installed; with neither it has loopback only. The
// namespace is held by a small child of kiln (holdNetns) and joined by
// the run: runc through the spec, the chroot isolation by setns on the
// thread that forks the command.

const netnsArg0 = "kiln-run-netns"

// userNetwork is a network namespace held for one run, and the helper
// that connects it.
type userNetwork struct {
	holder *exec.Cmd
	stop   io.Closer // closing it ends the holder (and the helper with it)
	helper *exec.Cmd // slirp4netns
	pasta  int       // pasta's pid (it puts itself in the background)
	exitW  *os.File  // slirp4netns's --exit-fd
	ns     *os.File  // the namespace, open
	// slirp says the helper is slirp4netns: DNS goes to its resolver.
	slirp bool
}

// userNetworkWanted reports whether the run gets a connected private
// network: a private network in a user namespace (rootless kiln).
func userNetworkWanted(n Network) bool {
	return n == NetworkPrivate && idmap.InUserNamespace()
}

// slirpDNS is slirp4netns's built-in resolver.
const slirpDNS = "10.0.2.3"

// startUserNetwork makes the namespace and connects it. With neither
// pasta nor slirp4netns it returns the namespace unconnected and a note.
func startUserNetwork(runDir, id string) (n *userNetwork, note string, err error) {
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return nil, "", err
	}
	defer stdinR.Close()
	holder := &exec.Cmd{
		Path:        "/proc/self/exe",
		Args:        []string{netnsArg0},
		Env:         []string{reexecEnv + "=1"},
		Stdin:       stdinR,
		SysProcAttr: &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL},
		WaitDelay:   time.Second,
	}
	ready, err := holder.StdoutPipe()
	if err != nil {
		stdinW.Close()
		return nil, "", err
	}
	if err := holder.Start(); err != nil {
		stdinW.Close()
		return nil, "", fmt.Errorf("creating a network namespace: %w", err)
	}
	n = &userNetwork{holder: holder, stop: stdinW}
	defer func() {
		if err != nil {
			n.close()
			n = nil
		}
	}()
	if line, err := bufio.NewReader(ready).ReadString('\n'); err != nil || line != "ready\n" {
		return n, "", fmt.Errorf("creating a network namespace: the holder said %q: %v", line, err)
	}
	pid := strconv.Itoa(holder.Process.Pid)
	if n.ns, err = os.Open("/proc/" + pid + "/ns/net"); err != nil {
		return n, "", fmt.Errorf("opening the run's network namespace: %w", err)
	}
	if pasta, err := exec.LookPath("pasta"); err == nil {
		// pasta configures the namespace like the host's network and
		// goes to the background once it is up; it quits when the holder
		// does.
		pidFile := filepath.Join(runDir, "pasta-"+id+".pid")
		defer os.Remove(pidFile)
		// pasta drops the capabilities that would let it open another
		// process's namespace: it gets the one kiln opened.
		cmd := exec.Command(pasta, "--config-net", "--quiet", "--netns", "/proc/self/fd/3", "--netns-only", "--no-netns-quit", "--pid", pidFile)
		cmd.ExtraFiles = []*os.File{n.ns}
		cmd.WaitDelay = 5 * time.Second
		if out, err := cmd.CombinedOutput(); err != nil {
			return n, "", fmt.Errorf("connecting the private network with pasta: %v: %s", err, out)
		}
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return n, "", fmt.Errorf("connecting the private network with pasta: %w", err)
		}
		if n.pasta, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
			return n, "", fmt.Errorf("connecting the private network with pasta: pid file %q: %w", b, err)
		}
		return n, "", nil
	}
	slirp, err := exec.LookPath("slirp4netns")
	if err != nil {
		return n, "neither pasta (Debian: passt) nor slirp4netns is installed: the private network has loopback only", nil
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return n, "", err
	}
	defer readyR.Close()
	exitR, exitW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return n, "", err
	}
	n.exitW = exitW
	n.slirp = true
	n.helper = &exec.Cmd{
		Path:        slirp,
		Args:        []string{"slirp4netns", "--configure", "--mtu=65520", "--disable-host-loopback", "--ready-fd=3", "--exit-fd=4", pid, "tap0"},
		ExtraFiles:  []*os.File{readyW, exitR},
		SysProcAttr: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
		WaitDelay:   time.Second,
	}
	var errb limitedBuffer
	n.helper.Stderr = &errb
	err = n.helper.Start()
	readyW.Close()
	exitR.Close()
	if err != nil {
		n.helper = nil
		return n, "", fmt.Errorf("starting slirp4netns: %w", err)
	}
	b := make([]byte, 1)
	if _, err := readyR.Read(b); err != nil || b[0] != '1' {
		return n, "", fmt.Errorf("connecting the private network with slirp4netns: not ready: %s", errb.String())
	}
	return n, "", nil
}

// close ends the helper and the holder and waits for them; it is safe on
// a nil *userNetwork.
func (n *userNetwork) close() {
	if n == nil {
		return
	}
	if n.ns != nil {
		n.ns.Close()
	}
	if n.exitW != nil {
		n.exitW.Close()
	}
	if n.helper != nil {
		_ = n.helper.Wait()
	}
	if n.pasta > 0 {
		_ = syscall.Kill(n.pasta, syscall.SIGTERM)
	}
	n.stop.Close()
	_ = n.holder.Wait()
}

// holdNetns is the holder's life: loopback up, "ready" on stdout, then
// wait until stdin closes (kiln is done, or gone).
func holdNetns() int {
	if err := loopbackUp(); err != nil {
		fmt.Printf("error: bringing up loopback: %v\n", err)
		return 1
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// limitedBuffer keeps the first 4 KiB written to it.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 4096 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }
