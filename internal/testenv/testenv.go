// Package testenv says whether a test can run here, for tests only. Away
// from CI a test that needs what this machine lacks (root, a peer tool, a
// kernel feature) skips, saying what is missing. In CI (KILN_CI=1, set by
// scripts/test.sh) the machine is root with every peer installed, so the
// same lack is a failure: nothing skips in CI that could have run.
//
// A test that can never run in CI (an opt-in test, a helper process, a
// feature the CI machine's kernel lacks) calls t.Skip itself, saying why.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// CIVar is the environment variable that marks a CI run.
const CIVar = "KILN_CI"

// CI reports whether this is a CI run (KILN_CI=1).
func CI() bool { return os.Getenv(CIVar) == "1" }

// Unavailable ends t because what it needs is missing: a skip that says
// why, or in CI a failure.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if CI() {
		t.Fatalf("in CI ("+CIVar+"=1) every test must run, and this one cannot: "+format, args...)
	}
	t.Skipf(format, args...)
}

// NeedRoot ends t (see Unavailable) unless it runs as root; why says what
// needs root.
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "needs root: %s", why)
	}
}

// NeedBinary returns the path of the program name, or ends t (see
// Unavailable) when it is not installed.
func NeedBinary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, "%s is not installed (scripts/deps.sh installs it)", name)
	}
	return p
}
