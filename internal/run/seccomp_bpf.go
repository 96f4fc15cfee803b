package run

import (
	"fmt"
	"slices"
	"unsafe"

	"golang.org/x/sys/unix"
)

// seccompFilter compiles the default profile (seccompDenied) for a process
// holding caps into a classic BPF program: calls of another architecture
// and x32 calls fail with ENOSYS, denied calls with EPERM (clone3 with
// ENOSYS, so libc falls back to clone), everything else is allowed.
func seccompFilter(caps []string) []unix.SockFilter {
	const (
		ld    = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jge   = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
		ret   = unix.BPF_RET | unix.BPF_K
		eperm = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
		nosys = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	)
	prog := []unix.SockFilter{
		{Code: ld, K: 4}, // seccomp_data.arch
		{Code: jeq, Jt: 1, K: seccompAuditArch},
		{Code: ret, K: nosys},
		{Code: ld, K: 0},                  // seccomp_data.nr
		{Code: jge, Jf: 1, K: 0x40000000}, // x32 ABI
		{Code: ret, K: nosys},
	}
	for _, r := range seccompDenied {
		if r.unlockCap != "" && slices.Contains(caps, r.unlockCap) {
			continue
		}
		for _, name := range r.names {
			nr, ok := syscallNumbers[name]
			if !ok {
				continue
			}
			action := uint32(eperm)
			if name == "clone3" {
				action = nosys
			}
			prog = append(prog, unix.SockFilter{Code: jeq, Jf: 1, K: nr}, unix.SockFilter{Code: ret, K: action})
		}
	}
	return append(prog, unix.SockFilter{Code: ret, K: unix.SECCOMP_RET_ALLOW})
}

// installSeccomp loads the filter on the calling thread; processes it
// forks inherit it.
func installSeccomp(caps []string) error {
	if seccompAuditArch == 0 {
		return nil
	}
	prog := seccompFilter(caps)
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&fprog)), 0, 0)
	if err != nil {
		return fmt.Errorf("loading the seccomp filter: %w", err)
	}
	return nil
}
