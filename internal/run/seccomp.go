package run

import (
	"runtime"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// seccompRule denies syscalls unless the process holds unlockCap.
type seccompRule struct {
	unlockCap string
	names     []string
}

// seccompDenied is the default seccomp profile as a deny list: what
// Docker's default profile refuses, grouped by the capability that lets
// Docker allow it again. Denied calls fail with EPERM.
var seccompDenied = []seccompRule{
	{"", []string{
		"add_key", "keyctl", "request_key", "kexec_file_load", "kexec_load",
		"lookup_dcookie", "nfsservctl", "query_module", "get_kernel_syms",
		"create_module", "uselib", "userfaultfd", "ustat", "sysfs", "_sysctl",
		"vm86", "vm86old", "kcmp", "mbind", "set_mempolicy", "get_mempolicy",
		"move_pages",
	}},
	{"CAP_SYS_ADMIN", []string{
		"mount", "umount", "umount2", "pivot_root", "unshare", "setns",
		"swapon", "swapoff", "quotactl", "name_to_handle_at", "bpf",
		"perf_event_open", "fanotify_init", "fsopen", "fsconfig", "fsmount",
		"fspick", "move_mount", "open_tree", "mount_setattr", "clone3",
		"lsm_set_self_attr",
	}},
	{"CAP_DAC_READ_SEARCH", []string{"open_by_handle_at"}},
	{"CAP_SYS_MODULE", []string{"init_module", "finit_module", "delete_module"}},
	{"CAP_SYS_BOOT", []string{"reboot"}},
	{"CAP_SYS_PACCT", []string{"acct"}},
	{"CAP_SYS_RAWIO", []string{"iopl", "ioperm"}},
	{"CAP_SYS_TIME", []string{"settimeofday", "stime", "clock_settime", "clock_adjtime", "adjtimex"}},
	{"CAP_SYS_PTRACE", []string{"ptrace", "process_vm_readv", "process_vm_writev"}},
}

// seccompArches are the architectures the profile covers on this machine.
func seccompArches() []specs.Arch {
	switch runtime.GOARCH {
	case "amd64":
		return []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}
	case "arm64":
		return []specs.Arch{specs.ArchAARCH64, specs.ArchARM}
	case "s390x":
		return []specs.Arch{specs.ArchS390X, specs.ArchS390}
	case "ppc64le":
		return []specs.Arch{specs.ArchPPC64LE}
	}
	return nil
}

// defaultSeccomp returns the default profile for a process holding caps.
// clone3 is denied with ENOSYS so that libc falls back to clone, as Docker
// does; everything else denied fails with EPERM.
func defaultSeccomp(caps []string) *specs.LinuxSeccomp {
	eperm, enosys := uint(1), uint(38)
	sc := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: seccompArches(),
	}
	for _, r := range seccompDenied {
		if r.unlockCap != "" && slices.Contains(caps, r.unlockCap) {
			continue
		}
		var names []string
		for _, n := range r.names {
			if n == "clone3" {
				sc.Syscalls = append(sc.Syscalls, specs.LinuxSyscall{
					Names: []string{n}, Action: specs.ActErrno, ErrnoRet: &enosys,
				})
				continue
			}
			names = append(names, n)
		}
		sc.Syscalls = append(sc.Syscalls, specs.LinuxSyscall{
			Names: names, Action: specs.ActErrno, ErrnoRet: &eperm,
		})
	}
	return sc
}
