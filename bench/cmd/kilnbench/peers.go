package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// bench holds the tools, their private stores and the daemons kilnbench
// starts. Nothing it makes lives outside work, except the decoy docker
// socket file it may create for buildah (removed at the end).
type bench struct {
	work, kilnBin, dockerBin string
	lg                       *log.Logger
	dockerd                  *exec.Cmd
	dockerSock               string
	registry                 *exec.Cmd
	registryPort             int
	registryDir              string
	createdDockerSock        bool
}

func (b *bench) path(p ...string) string { return filepath.Join(append([]string{b.work}, p...)...) }

func (b *bench) kiln(args ...string) []string {
	return append([]string{b.kilnBin, "--root", b.path("kiln", "root"), "--runroot", b.path("kiln", "run")}, args...)
}

func (b *bench) buildah(args ...string) []string {
	return append([]string{"buildah", "--root", b.path("buildah", "root"), "--runroot", b.path("buildah", "run"), "--storage-driver", "overlay"}, args...)
}

// buildahStore is the containers-storage: reference prefix of buildah's
// private store, for skopeo.
func (b *bench) buildahStore(name string) string {
	return fmt.Sprintf("containers-storage:[overlay@%s+%s]%s", b.path("buildah", "root"), b.path("buildah", "run"), name)
}

func (b *bench) docker(args ...string) []string {
	return append([]string{b.dockerBin, "-H", "unix://" + b.dockerSock}, args...)
}

// buildahToDaemon runs buildah args in a private mount namespace whose
// /var/run/docker.sock is kilnbench's dockerd: buildah's docker-daemon:
// transport has no flag for the daemon's address.
func (b *bench) buildahToDaemon(args ...string) []string {
	script := `mount --bind "$1" /var/run/docker.sock && shift && exec "$@"`
	return append([]string{"unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", b.dockerSock}, b.buildah(args...)...)
}

// startDockerd starts a dockerd of its own: own socket, data root and
// exec root, no iptables and no bridge.
func (b *bench) startDockerd(ctx context.Context) error {
	dir := b.path("docker")
	b.dockerSock = filepath.Join(dir, "docker.sock")
	for _, d := range []string{"data", "exec"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return err
		}
	}
	logf, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		return err
	}
	cmd := exec.Command("dockerd", "-H", "unix://"+b.dockerSock, "--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"), "--pidfile", filepath.Join(dir, "dockerd.pid"),
		"--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver=overlay2")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting dockerd: %w", err)
	}
	b.dockerd = cmd
	for range 150 {
		if _, err := sh(ctx, nil, b.docker("version")...); err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("dockerd did not answer on %s (see %s)", b.dockerSock, logf.Name())
}

// startRegistry (re)starts docker-registry on a free loopback port with
// an empty storage directory.
func (b *bench) startRegistry(ctx context.Context) error {
	b.stopRegistry()
	if b.registryPort == 0 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		b.registryPort = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	b.registryDir = b.path("registry")
	if err := os.RemoveAll(b.registryDir); err != nil {
		return err
	}
	if err := os.MkdirAll(b.registryDir, 0o755); err != nil {
		return err
	}
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:%d\n",
		b.registryDir, b.registryPort)
	cfgPath := filepath.Join(b.registryDir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	cmd := exec.Command("docker-registry", "serve", cfgPath)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting docker-registry: %w", err)
	}
	b.registry = cmd
	url := "http://" + b.registryAddr() + "/v2/"
	for range 100 {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("docker-registry did not answer")
}

func (b *bench) registryAddr() string { return "127.0.0.1:" + strconv.Itoa(b.registryPort) }

func (b *bench) stopRegistry() {
	if b.registry != nil {
		b.registry.Process.Signal(syscall.SIGTERM)
		b.registry.Wait()
		b.registry = nil
	}
}

// stop ends the daemons kilnbench started, unmounts what the tools left
// mounted under work, and removes the decoy socket file.
func (b *bench) stop(ctx context.Context) {
	b.stopRegistry()
	if b.dockerd != nil {
		b.dockerd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { b.dockerd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			syscall.Kill(-b.dockerd.Process.Pid, syscall.SIGKILL)
		}
	}
	sh(ctx, nil, b.kiln("unmount", "--all")...)
	sh(ctx, nil, b.buildah("unmount", "--all")...)
	if b.createdDockerSock {
		os.Remove("/var/run/docker.sock")
	}
}

// ensureDockerSockTarget makes sure /var/run/docker.sock exists, for the
// bind mount in buildahToDaemon.
func (b *bench) ensureDockerSockTarget() error {
	if _, err := os.Lstat("/var/run/docker.sock"); err == nil {
		return nil
	}
	f, err := os.OpenFile("/var/run/docker.sock", os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	b.createdDockerSock = true
	return f.Close()
}
