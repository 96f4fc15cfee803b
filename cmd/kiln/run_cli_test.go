package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func runIsolations(t *testing.T) []string {
	isos := []string{"chroot"}
	if _, err := exec.LookPath("runc"); err == nil {
		isos = append(isos, "oci")
	}
	return isos
}

// TestRunBadInput: each mistake gives a one-line error naming the thing
// and the status Docker and Buildah use.
func TestRunBadInput(t *testing.T) {
	e := newEnv(t, "")
	e.busybox()
	c := e.mustKiln("from", "busybox")
	notExec := filepath.Join(t.TempDir(), "runc")
	must(t, os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644))
	tests := []struct {
		iso  string
		args []string
		code int
		want string
	}{
		{"", []string{"nosuchctr", "true"}, 125, "nosuchctr"},
		{"", []string{c}, 125, "command"},
		{"", []string{"--user", "ghost", c, "true"}, 125, "ghost"},
		{"", []string{"--workingdir", "/etc/passwd", c, "true"}, 125, "/etc/passwd"},
		{"", []string{"--network", "bridge", c, "true"}, 125, "bridge"},
		{"", []string{"--isolation", "vm", c, "true"}, 125, "vm"},
		{"", []string{"-v", "relative:/x", c, "true"}, 125, "relative"},
		{"oci", []string{"--runtime", "/nonexistent/runc", c, "true"}, 125, "/nonexistent/runc"},
		{"oci", []string{"--runtime", notExec, c, "true"}, 125, "not executable"},
		{"chroot", []string{c, "nosuchcmd"}, 127, "nosuchcmd"},
		{"oci", []string{c, "nosuchcmd"}, 127, "nosuchcmd"},
		{"chroot", []string{c, "/etc/passwd"}, 126, "/etc/passwd"},
		{"oci", []string{c, "/etc/passwd"}, 126, "/etc/passwd"},
	}
	for _, tt := range tests {
		args := append([]string{"run"}, tt.args...)
		if tt.iso != "" {
			args = append([]string{"run", "--isolation", tt.iso}, tt.args...)
		}
		_, errOut, code := e.kiln(args...)
		if code != tt.code {
			t.Errorf("kiln %v: exit %d, want %d (%s)", args, code, tt.code, errOut)
		}
		if !strings.Contains(errOut, tt.want) || strings.Count(errOut, "\n") > 0 {
			t.Errorf("kiln %v: error %q should be one line naming %q", args, errOut, tt.want)
		}
	}
}

// TestRunCLI: "--" handling, the exit status, the generated /etc files
// not reaching the committed layer, -t without a terminal, and the crun
// fallback message.
func TestRunCLI(t *testing.T) {
	e := newEnv(t, "")
	e.busybox()
	c := e.mustKiln("from", "busybox")
	for _, iso := range runIsolations(t) {
		for _, args := range [][]string{{c, "--", "sh", "-c", "exit 3"}, {c, "sh", "-c", "exit 3"}, {"--", c, "sh", "-c", "exit 3"}} {
			a := append([]string{"run", "--isolation", iso}, args...)
			if _, errOut, code := e.kiln(a...); code != 3 {
				t.Errorf("kiln %v: exit %d, want 3 (%s)", a, code, errOut)
			}
		}
		script := "cat /etc/hostname; echo x >> /etc/hosts; echo " + iso + " > /ran-" + iso
		if out := e.mustKiln("run", "--isolation", iso, "--hostname", "h-"+iso, "-t", c, "--", "sh", "-c", script); out != "h-"+iso {
			t.Errorf("%s: output %q, want the hostname", iso, out)
		}
	}
	e.mustKiln("commit", c, "after-run")
	c2 := e.mustKiln("from", "after-run")
	mp := e.mustKiln("mount", c2)
	for _, f := range []string{"etc/hosts", "etc/hostname", "etc/resolv.conf", "proc", "dev", "sys"} {
		if _, err := os.Lstat(filepath.Join(mp, f)); err == nil {
			t.Errorf("/%s leaked into the committed layer", f)
		}
	}
	if _, err := os.Stat(filepath.Join(mp, "ran-chroot")); err != nil {
		t.Errorf("what the run wrote is not in the committed layer: %v", err)
	}
	if _, err := exec.LookPath("runc"); err == nil {
		dir := t.TempDir()
		must(t, os.WriteFile(filepath.Join(dir, "crun"), []byte("#!/bin/sh\nexit 1\n"), 0o755))
		cmd := e.command("run", "--isolation", "oci", "--runtime", "crun", c, "echo", "ok")
		cmd.Env = append(cmd.Env, "PATH="+dir+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "ok") {
			t.Errorf("run with crun on this host: %v\n%s", err, out)
		}
		if hybrid := strings.Contains(string(out), "crun"); hybrid != hybridCgroupHost() {
			t.Errorf("crun fallback message shown: %v, hybrid cgroups: %v\n%s", hybrid, hybridCgroupHost(), out)
		}
	}
}

func hybridCgroupHost() bool {
	var st, uni syscall.Statfs_t
	const cgroup2 = 0x63677270
	return syscall.Statfs("/sys/fs/cgroup", &st) == nil && st.Type != cgroup2 &&
		syscall.Statfs("/sys/fs/cgroup/unified", &uni) == nil && uni.Type == cgroup2
}

// TestRunSignals: SIGINT and SIGTERM sent to kiln reach the command.
func TestRunSignals(t *testing.T) {
	e := newEnv(t, "")
	e.busybox()
	c := e.mustKiln("from", "busybox")
	for _, iso := range runIsolations(t) {
		for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
			name := map[syscall.Signal]string{syscall.SIGINT: "INT", syscall.SIGTERM: "TERM"}[sig]
			script := `trap "echo got-` + name + `; exit 9" ` + name + `; echo ready; while :; do sleep 0.05; done`
			cmd := e.command("run", "--isolation", iso, c, "--", "sh", "-c", script)
			var out syncBuffer
			cmd.Stdout, cmd.Stderr = &out, &out
			must(t, cmd.Start())
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(out.String(), "ready") && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			must(t, cmd.Process.Signal(sig))
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("%s: kiln run did not end on SIG%s: %q", iso, name, out.String())
			}
			if code := cmd.ProcessState.ExitCode(); code != 9 || !strings.Contains(out.String(), "got-"+name) {
				t.Errorf("%s SIG%s: exit %d, output %q; want 9 and got-%s", iso, name, code, out.String(), name)
			}
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRunKilledThenRm kills kiln with SIGKILL during a run: a later
// kiln rm of the container works and no mount under the store is left.
func TestRunKilledThenRm(t *testing.T) {
	e := newEnv(t, "")
	e.busybox()
	for _, iso := range runIsolations(t) {
		c := e.mustKiln("from", "busybox")
		cmd := e.command("run", "--isolation", iso, c, "--", "sh", "-c", "echo ready; exec sleep 30")
		var out syncBuffer
		cmd.Stdout = &out
		must(t, cmd.Start())
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(out.String(), "ready") && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		must(t, cmd.Process.Kill())
		cmd.Wait()
		if _, errOut, code := e.kiln("rm", c); code != 0 {
			t.Errorf("%s: kiln rm after kill -9: exit %d: %s", iso, code, errOut)
		}
		if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), e.root) {
			t.Errorf("%s: mounts left under the store:\n%s", iso, b)
		}
	}
}
