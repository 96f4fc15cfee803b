package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCaptureOrder: what this process and a child write to stdout and
// stderr is held back in the order it was written, each chunk with its
// stream.
func TestCaptureOrder(t *testing.T) {
	c, err := captureOutput()
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		f    *os.File
		text string
	}{{os.Stdout, "one\n"}, {os.Stderr, "two\n"}, {os.Stdout, "three\n"}, {os.Stderr, "four\n"}}
	for _, s := range steps {
		s.f.WriteString(s.text)
		time.Sleep(5 * time.Millisecond)
	}
	child := exec.Command("sh", "-c", "echo five; sleep 0.005; echo six >&2")
	child.Stdout, child.Stderr = os.Stdout, os.Stderr
	runErr := child.Run()
	c.restore()
	if runErr != nil {
		t.Fatal(runErr)
	}
	var got []string
	for _, ch := range c.chunks {
		got = append(got, strings.TrimSpace(string(ch.data))+map[int]string{1: "/out", 2: "/err"}[ch.fd])
	}
	want := "one/out two/err three/out four/err five/out six/err"
	if strings.Join(got, " ") != want {
		t.Errorf("held back %q, want %q", strings.Join(got, " "), want)
	}
}

// TestReadOnce: arguments naming what a second run could not read again.
func TestReadOnce(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "file")
	must(t, os.WriteFile(file, nil, 0o600))
	for arg, want := range map[string]bool{
		"-": true, "--file=-": true, "/dev/fd/63": true, "/proc/self/fd/0": true, "/dev/stdin": true,
		fifo: true, "--file=" + fifo: true, "id=s,src=" + fifo: true,
		file: false, dir: false, "--file=" + file: false, "localhost/x": false, "--layers": false,
	} {
		if got := readOnce(arg); got != want {
			t.Errorf("readOnce(%q) = %t, want %t", arg, got, want)
		}
	}
}
