package run

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/kiln-build/kiln/internal/image"
)

// BinfmtDir is where the kernel's binfmt_misc registrations are read.
const BinfmtDir = "/proc/sys/fs/binfmt_misc"

// ErrNoEmulator means a process of a foreign architecture cannot run:
// no emulator for its binaries is registered with binfmt_misc.
var ErrNoEmulator = errors.New("no emulator registered")

// elfMachine is how an architecture's ELF executables start: class
// (1: 32-bit, 2: 64-bit), byte order and e_machine.
type elfMachine struct {
	class     byte
	bigEndian bool
	machine   uint16
	qemu      string // the suffix of Debian's qemu-user-static binary
}

// elfMachines are the architectures (GOARCH names, as image configs
// spell them) that Debian's qemu-user-static emulates.
var elfMachines = map[string]elfMachine{
	"amd64":    {2, false, 62, "x86_64"},
	"386":      {1, false, 3, "i386"},
	"arm64":    {2, false, 183, "aarch64"},
	"arm":      {1, false, 40, "arm"},
	"ppc64le":  {2, false, 21, "ppc64le"},
	"ppc64":    {2, true, 21, "ppc64"},
	"s390x":    {2, true, 22, "s390x"},
	"riscv64":  {2, false, 243, "riscv64"},
	"mips64le": {2, false, 8, "mips64el"},
	"mips64":   {2, true, 8, "mips64"},
	"mipsle":   {1, false, 8, "mipsel"},
	"mips":     {1, true, 8, "mips"},
	"loong64":  {2, false, 258, "loongarch64"},
}

// header is the start of an executable (ET_EXEC) of m, as binfmt_misc
// matches it: the 20 bytes of e_ident, e_type and e_machine.
func (m elfMachine) header() []byte {
	h := make([]byte, 20)
	copy(h, "\x7fELF")
	h[4], h[5], h[6] = m.class, 1, 1
	var order binary.ByteOrder = binary.LittleEndian
	if m.bigEndian {
		h[5] = 2
		order = binary.BigEndian
	}
	order.PutUint16(h[16:], 2)
	order.PutUint16(h[18:], m.machine)
	return h
}

// RunsNatively reports whether this machine's kernel runs binaries of
// arch ("" is this machine's) without an emulator.
func RunsNatively(arch string) bool {
	switch arch {
	case "", runtime.GOARCH:
		return true
	case "386":
		return runtime.GOARCH == "amd64"
	case "arm":
		return runtime.GOARCH == "arm64"
	}
	return false
}

// Emulator is a binfmt_misc registration that runs foreign binaries.
type Emulator struct {
	// Name is the registration's name (qemu-aarch64).
	Name string
	// Interpreter is the program the kernel runs the binary with.
	Interpreter string
	// Flags are the registration's flags; F (fix binary) lets it run
	// binaries inside a container, where its path does not exist.
	Flags string
}

// CheckEmulator returns nil when binaries of arch run here: natively, or
// through an enabled binfmt_misc registration in dir (BinfmtDir) that
// matches them. Otherwise the error wraps ErrNoEmulator and says which
// Debian package provides one. A registration without the F flag is
// refused too, since its interpreter is not found inside a container.
//
// The architecture is normalized first ("x86_64" is amd64, "aarch64"
// arm64); one kiln knows no ELF machine for passes unchecked, and its
// binaries run or fail as the kernel says.
func CheckEmulator(dir, arch string) error {
	_, arch, _ = image.NormalizePlatform("linux", arch, "")
	if _, known := elfMachines[arch]; !known || RunsNatively(arch) {
		return nil
	}
	_, err := FindEmulator(dir, arch)
	return err
}

// FindEmulator returns the enabled binfmt_misc registration in dir that
// runs executables of arch; see CheckEmulator for its errors.
func FindEmulator(dir, arch string) (Emulator, error) {
	m, known := elfMachines[arch]
	if !known {
		return Emulator{}, fmt.Errorf("running %s binaries on %s: %w: kiln knows no emulator for %s", arch, runtime.GOARCH, ErrNoEmulator, arch)
	}
	install := fmt.Sprintf("install Debian's qemu-user-static and binfmt-support packages (they register qemu-%s), or run update-binfmts --enable qemu-%s", m.qemu, m.qemu)
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return Emulator{}, fmt.Errorf("running %s binaries on %s: %w: binfmt_misc is not mounted at %s: %s", arch, runtime.GOARCH, ErrNoEmulator, dir, install)
	}
	if strings.TrimSpace(string(status)) != "enabled" {
		return Emulator{}, fmt.Errorf("running %s binaries on %s: %w: binfmt_misc is disabled (%s/status)", arch, runtime.GOARCH, ErrNoEmulator, dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return Emulator{}, fmt.Errorf("reading binfmt_misc registrations: %w", err)
	}
	hdr := m.header()
	var unfixed *Emulator
	for _, e := range entries {
		if e.Name() == "status" || e.Name() == "register" {
			continue
		}
		reg, err := readBinfmt(filepath.Join(dir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return Emulator{}, err
		}
		if !reg.enabled || !reg.matches(hdr) {
			continue
		}
		em := Emulator{Name: e.Name(), Interpreter: reg.interpreter, Flags: reg.flags}
		if strings.Contains(reg.flags, "F") {
			return em, nil
		}
		unfixed = &em
	}
	if unfixed != nil {
		return *unfixed, fmt.Errorf("running %s binaries on %s: %w: %s (%s) is registered without the F flag, so its interpreter cannot be found inside a container: %s",
			arch, runtime.GOARCH, ErrNoEmulator, unfixed.Name, unfixed.Interpreter, install)
	}
	return Emulator{}, fmt.Errorf("running %s binaries on %s: %w for %s in %s: %s", arch, runtime.GOARCH, ErrNoEmulator, arch, dir, install)
}

// binfmt is one registration as /proc shows it.
type binfmt struct {
	enabled      bool
	interpreter  string
	flags        string
	offset       int
	magic, mask  []byte
	isExtMatcher bool // "extension" registrations never match a header
}

func readBinfmt(path string) (binfmt, error) {
	f, err := os.Open(path)
	if err != nil {
		return binfmt{}, err
	}
	defer f.Close()
	var b binfmt
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		switch k {
		case "enabled":
			b.enabled = true
		case "interpreter":
			b.interpreter = v
		case "flags:":
			b.flags = v
		case "offset":
			if b.offset, err = strconv.Atoi(v); err != nil {
				return b, fmt.Errorf("binfmt_misc registration %s: offset %q: %w", path, v, err)
			}
		case "magic":
			if b.magic, err = hex.DecodeString(v); err != nil {
				return b, fmt.Errorf("binfmt_misc registration %s: magic: %w", path, err)
			}
		case "mask":
			if b.mask, err = hex.DecodeString(v); err != nil {
				return b, fmt.Errorf("binfmt_misc registration %s: mask: %w", path, err)
			}
		case "extension":
			b.isExtMatcher = true
		}
	}
	return b, sc.Err()
}

// matches reports whether the registration's magic matches hdr at its
// offset, under its mask.
func (b binfmt) matches(hdr []byte) bool {
	if b.isExtMatcher || len(b.magic) == 0 || b.offset+len(b.magic) > len(hdr) {
		return false
	}
	for i, want := range b.magic {
		mask := byte(0xff)
		if i < len(b.mask) {
			mask = b.mask[i]
		}
		if hdr[b.offset+i]&mask != want&mask {
			return false
		}
	}
	return true
}
