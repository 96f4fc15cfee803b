package run

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testenv"
)

func TestFindRuntime(t *testing.T) {
	runc := testenv.NeedBinary(t, "runc")
	dir := t.TempDir()
	crun := filepath.Join(dir, "crun")
	if err := os.WriteFile(crun, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+filepath.Dir(runc))
	got, err := findRuntime("crun", Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := crun
	if hybridCgroups() {
		want = runc
	}
	if got != want {
		t.Errorf("findRuntime(crun) = %q, want %q (hybrid cgroups: %v)", got, want, hybridCgroups())
	}
	if _, err := findRuntime("no-such-runtime", Options{}); !errors.Is(err, ErrRuntimeNotFound) {
		t.Errorf("findRuntime(absent) error = %v, want ErrRuntimeNotFound", err)
	}
}

func TestDefaultIsolation(t *testing.T) {
	got := DefaultIsolation()
	if InContainer() && got != IsolationChroot {
		t.Errorf("DefaultIsolation() = %v inside a container, want chroot", got)
	}
	if _, err := exec.LookPath("runc"); err == nil && !InContainer() && got != IsolationOCI {
		t.Errorf("DefaultIsolation() = %v with runc installed, want oci", got)
	}
}

func TestRuntimeNotExecutable(t *testing.T) {
	dir := t.TempDir()
	rt := filepath.Join(dir, "runc")
	if err := os.WriteFile(rt, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := findRuntime(rt, Options{})
	if !errors.Is(err, ErrRuntimeNotFound) || !strings.Contains(err.Error(), "not executable") {
		t.Errorf("findRuntime(non-executable) error = %v, want ErrRuntimeNotFound saying it is not executable", err)
	}
}
