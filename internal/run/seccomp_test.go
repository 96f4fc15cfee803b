package run

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// seccompInput is one system call as the filter sees it.
type seccompInput struct {
	arch uint32
	nr   uint32
	args [6]uint64
}

// runBPF interprets a seccomp filter for in: the subset of classic BPF the
// compiler emits. It fails the test on anything else.
func runBPF(t *testing.T, prog []unix.SockFilter, in seccompInput) uint32 {
	t.Helper()
	data := make([]byte, 64)
	binary.LittleEndian.PutUint32(data[0:], in.nr)
	binary.LittleEndian.PutUint32(data[4:], in.arch)
	for i, a := range in.args {
		binary.LittleEndian.PutUint64(data[16+8*i:], a)
	}
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		f := prog[pc]
		switch f.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			acc = binary.LittleEndian.Uint32(data[f.K:])
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K:
			acc &= f.K
		case unix.BPF_JMP | unix.BPF_JA:
			pc += int(f.K)
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K,
			unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
			var ok bool
			switch f.Code &^ (unix.BPF_JMP | unix.BPF_K) {
			case unix.BPF_JEQ:
				ok = acc == f.K
			case unix.BPF_JGT:
				ok = acc > f.K
			case unix.BPF_JGE:
				ok = acc >= f.K
			case unix.BPF_JSET:
				ok = acc&f.K != 0
			}
			if ok {
				pc += int(f.Jt)
			} else {
				pc += int(f.Jf)
			}
		case unix.BPF_RET | unix.BPF_K:
			return f.K
		default:
			t.Fatalf("instruction %d: unexpected code %#x", pc, f.Code)
		}
	}
	t.Fatal("filter ran off its end")
	return 0
}

func nr(t *testing.T, name string) uint32 {
	t.Helper()
	n, ok := syscallNumbers[name]
	if !ok {
		t.Fatalf("no call %s here", name)
	}
	return n
}

var (
	retAllow  = uint32(unix.SECCOMP_RET_ALLOW)
	retEPERM  = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	retENOSYS = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
)

func compileFor(t *testing.T, p *SeccompProfile, caps []string) []unix.SockFilter {
	t.Helper()
	sc := p.resolve(seccompHost{arch: runtime.GOARCH, kernel: [2]int{6, 1}, caps: caps})
	prog, err := compileSeccomp(sc)
	if err != nil {
		t.Fatal(err)
	}
	return prog.Filter
}

// TestDefaultSeccompFilter runs the compiled default profile on calls and
// arguments: what Docker's profile allows and refuses.
func TestDefaultSeccompFilter(t *testing.T) {
	if seccompAuditArch == 0 {
		t.Skip("no call table for " + runtime.GOARCH)
	}
	sysAdmin := append(slices.Clone(DefaultCapabilities), "CAP_SYS_ADMIN")
	cloneFlags := uint64(unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_THREAD | unix.CLONE_SYSVSEM)
	tests := []struct {
		name string
		caps []string
		call string
		args [6]uint64
		want uint32
	}{
		{name: "read", call: "read", want: retAllow},
		{name: "execve", call: "execve", want: retAllow},
		{name: "clone of a thread", call: "clone", args: [6]uint64{cloneFlags}, want: retAllow},
		{name: "fork", call: "clone", args: [6]uint64{uint64(unix.SIGCHLD)}, want: retAllow},
		{name: "clone new user namespace", call: "clone", args: [6]uint64{unix.CLONE_NEWUSER | uint64(unix.SIGCHLD)}, want: retEPERM},
		{name: "clone new net namespace", call: "clone", args: [6]uint64{unix.CLONE_NEWNET}, want: retEPERM},
		{name: "clone new namespace with CAP_SYS_ADMIN", caps: sysAdmin, call: "clone", args: [6]uint64{unix.CLONE_NEWUSER}, want: retAllow},
		{name: "clone3 falls back", call: "clone3", want: retENOSYS},
		{name: "clone3 with CAP_SYS_ADMIN", caps: sysAdmin, call: "clone3", want: retAllow},
		{name: "unshare", call: "unshare", args: [6]uint64{unix.CLONE_NEWUSER}, want: retEPERM},
		{name: "unshare with CAP_SYS_ADMIN", caps: sysAdmin, call: "unshare", want: retAllow},
		{name: "mount", call: "mount", want: retEPERM},
		{name: "mount with CAP_SYS_ADMIN", caps: sysAdmin, call: "mount", want: retAllow},
		{name: "personality PER_LINUX", call: "personality", args: [6]uint64{0}, want: retAllow},
		{name: "personality query", call: "personality", args: [6]uint64{0xffffffff}, want: retAllow},
		{name: "personality UNAME26|PER_LINUX32", call: "personality", args: [6]uint64{0x20008}, want: retAllow},
		{name: "personality ADDR_NO_RANDOMIZE", call: "personality", args: [6]uint64{0x0040000}, want: retEPERM},
		{name: "personality high bits", call: "personality", args: [6]uint64{1 << 32}, want: retEPERM},
		{name: "keyctl", call: "keyctl", want: retEPERM},
		{name: "add_key", call: "add_key", want: retEPERM},
		{name: "io_uring_setup", call: "io_uring_setup", want: retEPERM},
		{name: "io_uring_enter", call: "io_uring_enter", want: retEPERM},
		{name: "userfaultfd", call: "userfaultfd", want: retEPERM},
		{name: "bpf", call: "bpf", want: retEPERM},
		{name: "ptrace", call: "ptrace", want: retAllow},
		{name: "chroot with CAP_SYS_CHROOT", call: "chroot", want: retAllow},
		{name: "chroot without", caps: []string{"CAP_CHOWN"}, call: "chroot", want: retEPERM},
		{name: "reboot", call: "reboot", want: retEPERM},
		{name: "socket AF_INET", call: "socket", args: [6]uint64{unix.AF_INET}, want: retAllow},
		{name: "socket AF_ALG", call: "socket", args: [6]uint64{unix.AF_ALG}, want: retEPERM},
		{name: "socket AF_NFC", call: "socket", args: [6]uint64{unix.AF_NFC}, want: retAllow},
		{name: "socket AF_VSOCK", call: "socket", args: [6]uint64{unix.AF_VSOCK}, want: retEPERM},
		{name: "socket AF_XDP", call: "socket", args: [6]uint64{unix.AF_XDP}, want: retAllow},
		{name: "newer call than the profile", call: "file_getattr", want: retENOSYS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			caps := tt.caps
			if caps == nil {
				caps = DefaultCapabilities
			}
			prog := compileFor(t, DefaultSeccompProfile(), caps)
			got := runBPF(t, prog, seccompInput{arch: seccompAuditArch, nr: nr(t, tt.call), args: tt.args})
			if got != tt.want {
				t.Errorf("%s%v = %#x, want %#x", tt.call, tt.args[:1], got, tt.want)
			}
		})
	}
	prog := compileFor(t, DefaultSeccompProfile(), DefaultCapabilities)
	t.Logf("default profile: %d instructions", len(prog))
	if got := runBPF(t, prog, seccompInput{arch: unix.AUDIT_ARCH_I386, nr: 3}); got != retENOSYS {
		t.Errorf("a call of another architecture = %#x, want ENOSYS", got)
	}
	if seccompX32Bit != 0 {
		if got := runBPF(t, prog, seccompInput{arch: seccompAuditArch, nr: seccompX32Bit}); got != retENOSYS {
			t.Errorf("an x32 call = %#x, want ENOSYS", got)
		}
	}
	if got := runBPF(t, prog, seccompInput{arch: seccompAuditArch, nr: 100000}); got != retENOSYS {
		t.Errorf("an unknown call = %#x, want ENOSYS", got)
	}
}

// TestSeccompArgumentOperators compares every operator, compiled, with
// the 64-bit comparison it stands for, on values around the 32-bit halves.
func TestSeccompArgumentOperators(t *testing.T) {
	if seccompAuditArch == 0 {
		t.Skip("no call table for " + runtime.GOARCH)
	}
	values := []uint64{0, 1, 7, 0xfffffffe, 0xffffffff, 1 << 32, 1<<32 | 7, 0xffffffff00000000, 0x7e020000, 0x7e020001, ^uint64(0)}
	ops := map[specs.LinuxSeccompOperator]func(arg, v, v2 uint64) bool{
		specs.OpEqualTo:      func(a, v, _ uint64) bool { return a == v },
		specs.OpNotEqual:     func(a, v, _ uint64) bool { return a != v },
		specs.OpLessThan:     func(a, v, _ uint64) bool { return a < v },
		specs.OpLessEqual:    func(a, v, _ uint64) bool { return a <= v },
		specs.OpGreaterThan:  func(a, v, _ uint64) bool { return a > v },
		specs.OpGreaterEqual: func(a, v, _ uint64) bool { return a >= v },
		specs.OpMaskedEqual:  func(a, v, v2 uint64) bool { return a&v == v2 },
	}
	for op, ref := range ops {
		for _, v := range values {
			v2 := v & 0xffff0000ffff0000
			p := &SeccompProfile{DefaultAction: specs.ActAllow, Syscalls: []SeccompRule{{
				Names: []string{"getpid"}, Action: specs.ActErrno,
				Args: []specs.LinuxSeccompArg{{Index: 2, Value: v, ValueTwo: v2, Op: op}},
			}}}
			prog := compileFor(t, p, nil)
			for _, arg := range values {
				got := runBPF(t, prog, seccompInput{arch: seccompAuditArch, nr: nr(t, "getpid"), args: [6]uint64{2: arg}}) == retEPERM
				if want := ref(arg, v, v2); got != want {
					t.Errorf("%s value %#x valueTwo %#x on %#x: matched %v, want %v", op, v, v2, arg, got, want)
				}
			}
		}
	}
}

// TestSeccompRuleOrder checks the rules runc and libseccomp would apply
// when a profile names a call more than once.
func TestSeccompRuleOrder(t *testing.T) {
	if seccompAuditArch == 0 {
		t.Skip("no call table for " + runtime.GOARCH)
	}
	eacces := uint(unix.EACCES)
	retEACCES := unix.SECCOMP_RET_ERRNO | uint32(unix.EACCES)
	allow := SeccompRule{Names: []string{"mkdir"}, Action: specs.ActAllow}
	deny := SeccompRule{Names: []string{"mkdir"}, Action: specs.ActErrno, ErrnoRet: &eacces}
	denyIf := func(args ...specs.LinuxSeccompArg) SeccompRule { r := deny; r.Args = args; return r }
	mode := func(op specs.LinuxSeccompOperator, v uint64) specs.LinuxSeccompArg {
		return specs.LinuxSeccompArg{Index: 1, Value: v, Op: op}
	}
	tests := []struct {
		name  string
		def   specs.LinuxSeccompAction
		rules []SeccompRule
		mode  uint64
		want  uint32
	}{
		{"first unconditional rule wins", specs.ActErrno, []SeccompRule{allow, deny}, 0o755, retAllow},
		{"first unconditional rule wins, reversed", specs.ActErrno, []SeccompRule{deny, allow}, 0o755, retEACCES},
		{"unconditional beats conditional", specs.ActErrno, []SeccompRule{denyIf(mode(specs.OpEqualTo, 0o755)), allow}, 0o755, retAllow},
		{"rule equal to the default is skipped", specs.ActAllow, []SeccompRule{allow, deny}, 0o755, retEACCES},
		{"conditional matches", specs.ActAllow, []SeccompRule{denyIf(mode(specs.OpEqualTo, 0o755))}, 0o755, retEACCES},
		{"conditional does not match", specs.ActAllow, []SeccompRule{denyIf(mode(specs.OpEqualTo, 0o755))}, 0o700, retAllow},
		{"conditions on two indexes are all needed", specs.ActAllow,
			[]SeccompRule{denyIf(mode(specs.OpEqualTo, 0o755), specs.LinuxSeccompArg{Index: 0, Value: 1, Op: specs.OpEqualTo})}, 0o755, retAllow},
		{"conditions on one index are alternatives", specs.ActAllow,
			[]SeccompRule{denyIf(mode(specs.OpEqualTo, 0o700), mode(specs.OpEqualTo, 0o755))}, 0o755, retEACCES},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &SeccompProfile{DefaultAction: tt.def, Syscalls: tt.rules}
			got := runBPF(t, compileFor(t, p, nil), seccompInput{arch: seccompAuditArch, nr: nr(t, "mkdir"), args: [6]uint64{1: tt.mode}})
			if got != tt.want {
				t.Errorf("mkdir(_, %#o) = %#x, want %#x", tt.mode, got, tt.want)
			}
		})
	}
}

func TestSeccompUnsupportedByChroot(t *testing.T) {
	for _, p := range []*SeccompProfile{
		{DefaultAction: specs.ActAllow, Syscalls: []SeccompRule{{Names: []string{"mkdir"}, Action: specs.ActNotify}}},
		{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv}},
	} {
		if _, err := compileSeccomp(p.resolve(seccompHost{arch: runtime.GOARCH})); !errors.Is(err, ErrSeccompUnsupported) {
			t.Errorf("compileSeccomp(%+v) error = %v, want ErrSeccompUnsupported", p, err)
		}
	}
}

// TestDefaultSeccompResolve checks which conditional rules hold for which
// capabilities and architectures.
func TestDefaultSeccompResolve(t *testing.T) {
	tests := []struct {
		name       string
		host       seccompHost
		want, nope []string // calls with and without an unconditional allow
		arches     []specs.Arch
	}{
		{name: "amd64 default caps", host: seccompHost{arch: "amd64", kernel: [2]int{6, 1}, caps: DefaultCapabilities},
			want: []string{"read", "arch_prctl", "modify_ldt", "chroot", "ptrace"}, nope: []string{"mount", "set_tls", "kcmp", "clone"},
			arches: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}},
		{name: "arm64 sys_admin", host: seccompHost{arch: "arm64", kernel: [2]int{6, 1}, caps: []string{"CAP_SYS_ADMIN"}},
			want: []string{"set_tls", "mount", "clone", "clone3"}, nope: []string{"arch_prctl", "chroot"},
			arches: []specs.Arch{specs.ArchAARCH64, specs.ArchARM}},
		{name: "old kernel", host: seccompHost{arch: "amd64", kernel: [2]int{4, 4}},
			nope: []string{"ptrace"}, arches: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := DefaultSeccompProfile().resolve(tt.host)
			allowed := map[string]bool{}
			for _, s := range sc.Syscalls {
				if s.Action == specs.ActAllow && len(s.Args) == 0 {
					for _, n := range s.Names {
						allowed[n] = true
					}
				}
			}
			for _, n := range tt.want {
				if !allowed[n] {
					t.Errorf("%s not allowed", n)
				}
			}
			for _, n := range tt.nope {
				if allowed[n] {
					t.Errorf("%s allowed", n)
				}
			}
			if diff := cmp.Diff(tt.arches, sc.Architectures); diff != "" {
				t.Errorf("architectures (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseSeccompProfile(t *testing.T) {
	tests := []struct {
		name, json string
		err        string // substring; "" means valid
	}{
		{name: "empty means unconfined", json: `{}`},
		{name: "runtime-spec form", json: `{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
			"syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":13,"args":[{"index":1,"value":493,"op":"SCMP_CMP_EQ"}]}]}`},
		{name: "old name form", json: `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"name":"read","action":"SCMP_ACT_ALLOW"}]}`},
		{name: "not JSON", json: `{"defaultAction":`, err: "decoding JSON"},
		{name: "trailing data", json: `{} {}`, err: "data after"},
		{name: "unknown default action", json: `{"defaultAction":"SCMP_ACT_MAYBE"}`, err: `unknown default action "SCMP_ACT_MAYBE"`},
		{name: "rules without default", json: `{"syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}`, err: "unknown default action"},
		{name: "unknown action", json: `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"ALLOW"}]}`, err: `syscalls[0]: unknown action "ALLOW"`},
		{name: "name and names", json: `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"read","names":["write"],"action":"SCMP_ACT_ERRNO"}]}`, err: "both name and names"},
		{name: "no names", json: `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"action":"SCMP_ACT_ERRNO"}]}`, err: "no syscall names"},
		{name: "bad operator", json: `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"EQ"}]}]}`, err: `unknown operator "EQ"`},
		{name: "bad index", json: `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}`, err: "argument index 6"},
		{name: "bad architecture", json: `{"defaultAction":"SCMP_ACT_ALLOW","architectures":["x86_64"]}`, err: `unknown architecture "x86_64"`},
		{name: "architectures and archMap", json: `{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],"archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}`, err: "both architectures and archMap"},
		{name: "bad minKernel", json: `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","includes":{"minKernel":"four"}}]}`, err: "bad kernel version"},
		{name: "errno out of range", json: `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","errnoRet":70000}]}`, err: "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSeccompProfile([]byte(tt.json))
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("error = %v, want none", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("error = %v, want one containing %q", err, tt.err)
			}
		})
	}
}

// TestLoadPeerSeccompProfiles reads the profiles other tools ship: the
// Podman/Buildah one from containers-common, if installed, and the
// default profile written out as JSON.
func TestLoadPeerSeccompProfiles(t *testing.T) {
	files := []string{"/usr/share/containers/seccomp.json"}
	b, err := json.Marshal(DefaultSeccompProfile())
	if err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(t.TempDir(), "default.json")
	if err := os.WriteFile(own, b, 0o644); err != nil {
		t.Fatal(err)
	}
	files = append(files, own)
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			t.Logf("skipping %s: %v", f, err)
			continue
		}
		p, err := LoadSeccompProfile(f)
		if err != nil {
			t.Fatalf("LoadSeccompProfile(%s): %v", f, err)
		}
		if seccompAuditArch == 0 {
			continue
		}
		prog := compileFor(t, p, DefaultCapabilities)
		if got := runBPF(t, prog, seccompInput{arch: seccompAuditArch, nr: nr(t, "read")}); got != retAllow {
			t.Errorf("%s: read = %#x, want allowed", f, got)
		}
		if got := runBPF(t, prog, seccompInput{arch: seccompAuditArch, nr: nr(t, "kexec_load")}); got == retAllow {
			t.Errorf("%s: kexec_load allowed", f)
		}
	}
	if _, err := LoadSeccompProfile(filepath.Join(t.TempDir(), "absent.json")); !errors.Is(err, ErrBadSecurityOpt) {
		t.Errorf("absent file: error = %v, want ErrBadSecurityOpt", err)
	}
}

func TestParseSecurityOpts(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "deny-mkdir.json")
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(good, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}`), 0o644)
	os.WriteFile(bad, []byte(`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [`), 0o644)
	tests := []struct {
		opts []string
		want Security
		err  string // substring of the error
	}{
		{opts: nil, want: Security{}},
		{opts: []string{"seccomp=unconfined"}, want: Security{SeccompUnconfined: true}},
		{opts: []string{"seccomp=" + good}, want: Security{SeccompFile: good}},
		{opts: []string{"seccomp=unconfined", "seccomp=" + good}, want: Security{SeccompFile: good}},
		{opts: []string{"seccomp=" + good, "seccomp=unconfined"}, want: Security{SeccompUnconfined: true}},
		{opts: []string{"no-new-privileges"}, want: Security{NoNewPrivileges: true}},
		{opts: []string{"no-new-privileges=true", "no-new-privileges=false"}, want: Security{}},
		{opts: []string{"mask=/etc/group:/srv/x", "unmask=/proc/kcore", "unmask=ALL"},
			want: Security{Mask: []string{"/etc/group", "/srv/x"}, Unmask: []string{"/proc/kcore", "ALL"}}},
		{opts: []string{"apparmor=unconfined", "label=disable"}, want: Security{}},
		{opts: []string{"seccomp=" + bad}, err: bad},
		{opts: []string{"seccomp=" + filepath.Join(dir, "none.json")}, err: "none.json"},
		{opts: []string{"seccomp="}, err: `"seccomp="`},
		{opts: []string{"apparmor=docker-default"}, err: `"apparmor=docker-default"`},
		{opts: []string{"label=type:container_t"}, err: `"label=type:container_t"`},
		{opts: []string{"mask=relative"}, err: `"relative" is not an absolute path`},
		{opts: []string{"no-new-privileges=maybe"}, err: "no-new-privileges=maybe"},
		{opts: []string{"systempaths=unconfined"}, err: `"systempaths=unconfined": unknown option`},
		{opts: []string{"seccomp"}, err: `"seccomp": want NAME=VALUE`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.opts, ","), func(t *testing.T) {
			got, err := ParseSecurityOpts(tt.opts)
			if tt.err != "" {
				if !errors.Is(err, ErrBadSecurityOpt) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want ErrBadSecurityOpt containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (got.SeccompProfile != nil) != (tt.want.SeccompFile != "") {
				t.Errorf("profile loaded = %v, want %v", got.SeccompProfile != nil, tt.want.SeccompFile != "")
			}
			got.SeccompProfile = nil
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			again, err := ParseSecurityOpts(got.Options())
			if err != nil {
				t.Fatalf("parsing Options() again: %v", err)
			}
			again.SeccompProfile = nil
			if diff := cmp.Diff(got, again); diff != "" {
				t.Errorf("Options() does not round-trip (-first +again):\n%s", diff)
			}
		})
	}
}

func TestSecurityPaths(t *testing.T) {
	tests := []struct {
		sec              Security
		masked, readonly []string
	}{
		{Security{}, maskedPaths, readonlyPaths},
		{Security{Mask: []string{"/etc/group"}}, append(slices.Clone(maskedPaths), "/etc/group"), readonlyPaths},
		{Security{Unmask: []string{"ALL"}, Mask: []string{"/etc/group"}}, []string{"/etc/group"}, nil},
		{Security{Unmask: []string{"/proc/kcore", "/proc/s*"}},
			slices.DeleteFunc(slices.Clone(maskedPaths), func(p string) bool {
				return p == "/proc/kcore" || strings.HasPrefix(p, "/proc/s")
			}),
			slices.DeleteFunc(slices.Clone(readonlyPaths), func(p string) bool { return strings.HasPrefix(p, "/proc/s") })},
	}
	for i, tt := range tests {
		m, r := tt.sec.paths()
		if diff := cmp.Diff(tt.masked, m); diff != "" {
			t.Errorf("%d: masked (-want +got):\n%s", i, diff)
		}
		if diff := cmp.Diff(tt.readonly, r); diff != "" {
			t.Errorf("%d: read-only (-want +got):\n%s", i, diff)
		}
	}
}
