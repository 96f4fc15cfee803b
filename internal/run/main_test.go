package run

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testenv"
)

func TestMain(m *testing.M) {
	if IsReexec() {
		os.Exit(Reexec())
	}
	os.Exit(m.Run())
}

// requiresRoot skips t unless it runs as root (fails it in CI: testenv).
func requiresRoot(t *testing.T) {
	t.Helper()
	testenv.NeedRoot(t, "namespaces, mounts and runc")
}

const testPasswd = `root:x:0:0:root:/root:/bin/sh
alice:x:1000:1000:Alice:/home/alice:/bin/sh
bob:x:1001:1001::/home/bob:/bin/sh
`

const testGroup = `root:x:0:
alice:x:1000:
bob:x:1001:
audio:x:29:alice
video:x:44:alice,bob
`

// busyboxRootfs builds a root filesystem from the host's static busybox
// with every applet linked into /bin and a passwd and group file. It has no
// /proc, /dev, /sys or /etc/hosts, so tests can check that a run leaves it
// unchanged.
func busyboxRootfs(t *testing.T) string {
	t.Helper()
	bb := testenv.NeedBinary(t, "busybox")
	if out, _ := exec.Command("file", "-L", bb).Output(); len(out) > 0 && !strings.Contains(string(out), "statically") {
		testenv.Unavailable(t, "needs a static busybox (busybox-static), and %s is not one", bb)
	}
	root := t.TempDir()
	for _, d := range []string{"bin", "etc", "tmp", "root"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(root, "tmp"), 0o1777)
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	list, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for name := range strings.FieldsSeq(string(list)) {
		if name != "busybox" {
			os.Symlink("busybox", filepath.Join(root, "bin", name))
		}
	}
	for name, content := range map[string]string{"etc/passwd": testPasswd, "etc/group": testGroup} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}
