package testenv_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testenv"
)

// TestUnavailable runs TestHelperNeedsMissing in a child test process:
// without KILN_CI it skips saying what is missing, with KILN_CI=1 it
// fails saying the same.
func TestUnavailable(t *testing.T) {
	tests := []struct {
		ci       string
		wantFail bool
		want     string
	}{
		{"", false, "--- SKIP: TestHelperNeedsMissing"},
		{"0", false, "--- SKIP: TestHelperNeedsMissing"},
		{"1", true, "--- FAIL: TestHelperNeedsMissing"},
	}
	for _, tt := range tests {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperNeedsMissing$", "-test.v")
		cmd.Env = append(os.Environ(), "KILN_TESTENV_HELPER=1", testenv.CIVar+"="+tt.ci)
		out, err := cmd.CombinedOutput()
		if failed := err != nil; failed != tt.wantFail {
			t.Errorf("KILN_CI=%q: failed %v, want %v:\n%s", tt.ci, failed, tt.wantFail, out)
		}
		for _, w := range []string{tt.want, "kiln-no-such-tool is not installed"} {
			if !strings.Contains(string(out), w) {
				t.Errorf("KILN_CI=%q: output lacks %q:\n%s", tt.ci, w, out)
			}
		}
	}
}

// TestHelperNeedsMissing is run by TestUnavailable in a child process.
func TestHelperNeedsMissing(t *testing.T) {
	if os.Getenv("KILN_TESTENV_HELPER") != "1" {
		t.Skip("helper process of TestUnavailable only")
	}
	testenv.NeedBinary(t, "kiln-no-such-tool")
	t.Error("NeedBinary returned for a program that is not installed")
}

func TestNeedBinary(t *testing.T) {
	if got := testenv.NeedBinary(t, "sh"); !strings.HasSuffix(got, "/sh") {
		t.Errorf("NeedBinary(sh) = %q", got)
	}
}
