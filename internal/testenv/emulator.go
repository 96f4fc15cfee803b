package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// NeedEmulator makes sure the kernel runs binaries of the qemu
// architecture name (aarch64, s390x, ...) through Debian's
// qemu-user-static, registered with binfmt_misc with the F flag, or ends t
// (see Unavailable). When the package is installed but the registration is
// missing (binfmt-support's service did not run, as in a container without
// systemd), it enables it with update-binfmts, as that service does at
// boot; the registration stays, like the service's.
func NeedEmulator(t testing.TB, name string) {
	t.Helper()
	entry := filepath.Join("/proc/sys/fs/binfmt_misc", "qemu-"+name)
	registered := func() bool {
		b, err := os.ReadFile(entry)
		if err != nil {
			return false
		}
		s := string(b)
		return strings.HasPrefix(s, "enabled") && strings.Contains(s, "flags: ") &&
			strings.Contains(s[strings.Index(s, "flags: "):], "F")
	}
	if registered() {
		return
	}
	if _, err := os.Stat("/usr/share/binfmts/qemu-" + name); err != nil {
		Unavailable(t, "no emulator for %s: Debian's qemu-user-static and binfmt-support are not installed (scripts/deps.sh installs them)", name)
		return
	}
	NeedRoot(t, "registering qemu-"+name+" with binfmt_misc")
	// Another test binary may enable it at the same time and this one's
	// update-binfmts then fail: what counts is the registration after.
	out, err := exec.Command("update-binfmts", "--enable", "qemu-"+name).CombinedOutput()
	if !registered() {
		Unavailable(t, "update-binfmts --enable qemu-%s did not register it (%v): %s", name, err, out)
	}
}
