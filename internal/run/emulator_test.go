package run

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testenv"
)

// aarch64Entry is qemu-aarch64 as Debian's qemu-user-static registers it
// (update-binfmts), read back from /proc/sys/fs/binfmt_misc.
const aarch64Entry = `enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: PF
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
`

// s390xEntry is Debian's qemu-s390x registration.
const s390xEntry = `enabled
interpreter /usr/libexec/qemu-binfmt/s390x-binfmt-P
flags: PF
offset 0
magic 7f454c4602020100000000000000000000020016
mask fffffffffffffffcfffffffffffffffffffeffff
`

func binfmtDir(t *testing.T, status string, entries map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if status != "" {
		if err := os.WriteFile(filepath.Join(dir, "status"), []byte(status+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range entries {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCheckEmulator(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the table is written for an amd64 host")
	}
	tests := []struct {
		name    string
		status  string
		entries map[string]string
		arch    string
		want    string // "" for no error, else a substring of the error
	}{
		{"native", "", nil, "amd64", ""},
		{"386 on amd64", "", nil, "386", ""},
		{"registered", "enabled", map[string]string{"qemu-aarch64": aarch64Entry}, "arm64", ""},
		{"other arch registered", "enabled", map[string]string{"qemu-aarch64": aarch64Entry}, "riscv64", "install Debian's qemu-user-static"},
		{"big-endian", "enabled", map[string]string{"qemu-s390x": s390xEntry, "qemu-aarch64": aarch64Entry}, "s390x", ""},
		{"not mounted", "", nil, "arm64", "binfmt_misc is not mounted"},
		{"disabled", "disabled", map[string]string{"qemu-aarch64": aarch64Entry}, "arm64", "binfmt_misc is disabled"},
		{"entry disabled", "enabled", map[string]string{"qemu-aarch64": strings.Replace(aarch64Entry, "enabled", "disabled", 1)}, "arm64", "no emulator registered for arm64"},
		{"without F", "enabled", map[string]string{"qemu-aarch64": strings.Replace(aarch64Entry, "flags: PF", "flags: P", 1)}, "arm64", "without the F flag"},
		{"unknown arch passes", "enabled", nil, "sparc64", ""},
		{"x86_64 is amd64", "", nil, "x86_64", ""},
		{"aarch64 is arm64", "enabled", map[string]string{"qemu-aarch64": aarch64Entry}, "aarch64", ""},
		{"aarch64 without emulator", "enabled", nil, "aarch64", "install Debian's qemu-user-static"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckEmulator(binfmtDir(t, tt.status, tt.entries), tt.arch)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckEmulator(%s) = %v, want nil", tt.arch, err)
				}
				return
			}
			if !errors.Is(err, ErrNoEmulator) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CheckEmulator(%s) = %v, want ErrNoEmulator saying %q", tt.arch, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.arch) {
				t.Errorf("error %q does not name %s", err, tt.arch)
			}
		})
	}
}

// TestFindEmulatorHost reads this machine's registrations: with Debian's
// qemu-user-static installed (scripts/deps.sh), arm64 has one.
func TestFindEmulatorHost(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("needs an amd64 host")
	}
	testenv.NeedEmulator(t, "aarch64")
	em, err := FindEmulator(BinfmtDir, "arm64")
	if err != nil {
		t.Fatalf("qemu-user-static is installed but: %v", err)
	}
	if !strings.Contains(em.Interpreter, "aarch64") {
		t.Errorf("emulator for arm64 is %+v", em)
	}
}
