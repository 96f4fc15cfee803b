package transporttest

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/testenv"
)

// DockerCLI is Debian's docker client (from docker.io). Tests use it by
// path: /usr/local/bin/docker may be a stray binary of another version.
const DockerCLI = "/usr/bin/docker"

// Dockerd is a dockerd of its own: socket, data root, exec root and
// containerd namespace in a temporary directory, no iptables, no bridge.
type Dockerd struct {
	// Host is the daemon address, unix:///…/docker.sock, for DOCKER_HOST.
	Host string
	dir  string
}

// StartDockerd starts Debian's dockerd and waits until it answers. It
// needs root and skips otherwise (fails in CI: testenv). The daemon is stopped, its mounts
// undone and its directory removed when the test ends.
func StartDockerd(t testing.TB) *Dockerd {
	t.Helper()
	testenv.NeedRoot(t, "dockerd")
	bin := NeedBinary(t, "dockerd")
	if _, err := os.Stat(DockerCLI); err != nil {
		testenv.Unavailable(t, "%s (Debian's docker.io) is not installed", DockerCLI)
	}
	// A short path: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "kd-")
	if err != nil {
		t.Fatal(err)
	}
	d := &Dockerd{Host: "unix://" + filepath.Join(dir, "docker.sock"), dir: dir}
	conf := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(conf, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--host", d.Host, "--config-file", conf,
		"--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"), "--iptables=false", "--ip6tables=false",
		"--bridge=none", "--containerd-namespace", "kiln-test", "--containerd-plugins-namespace", "kiln-test-plugins",
		"--log-level", "error")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting dockerd: %v", err)
	}
	t.Cleanup(func() { d.stop(t, cmd) })
	if err := d.waitReady(30 * time.Second); err != nil {
		t.Fatalf("dockerd did not start: %v\n%s", err, logs.String())
	}
	return d
}

func (d *Dockerd) waitReady(timeout time.Duration) error {
	sock := strings.TrimPrefix(d.Host, "unix://")
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var nd net.Dialer
		return nd.DialContext(ctx, "unix", sock)
	}}, Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := c.Get("http://docker/_ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *Dockerd) stop(t testing.TB, cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
	}
	UnmountUnder(d.dir)
	if err := os.RemoveAll(d.dir); err != nil {
		t.Logf("removing dockerd's directory: %v", err)
	}
}

// UnmountUnder lazily unmounts whatever is still mounted below dir,
// deepest first: what a test's daemon or peer tool left mounted.
func UnmountUnder(dir string) {
	ms, err := mountinfo.GetMounts(func(m *mountinfo.Info) (bool, bool) {
		return !strings.HasPrefix(m.Mountpoint, dir+"/"), false
	})
	if err != nil {
		return
	}
	for i := len(ms) - 1; i >= 0; i-- {
		unix.Unmount(ms[i].Mountpoint, unix.MNT_DETACH)
	}
}

// Docker runs Debian's docker CLI against this daemon and returns its
// combined output; it fails the test on a non-zero exit.
func (d *Dockerd) Docker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := d.Command(args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Command returns the docker CLI command for args, talking to this
// daemon, with a config directory of its own.
func (d *Dockerd) Command(args ...string) *exec.Cmd {
	cmd := exec.Command(DockerCLI, append([]string{"--config", filepath.Join(d.dir, "cli"), "--host", d.Host}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+d.Host)
	return cmd
}
