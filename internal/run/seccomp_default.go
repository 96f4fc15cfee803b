package run

import (
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// seccompAllowed is the default profile's allow-list: the calls any
// process may make, whatever its capabilities. Calls an architecture
// does not have are skipped there.
const seccompAllowed = `
accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown
chown32 clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime
clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range connect
copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old
epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit
exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir
fchmod fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr
flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64
fsync ftruncate ftruncate64 futex futex_requeue futex_time64 futex_wait futex_waitv
futex_wake futimesat get_robust_list get_thread_area getcpu getcwd getdents getdents64
getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer
getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid getresgid32
getresuid getresuid32 getrlimit getrusage getsid getsockname getsockopt gettid
gettimeofday getuid getuid32 getxattr getxattrat inotify_add_watch inotify_init
inotify_init1 inotify_rm_watch io_cancel io_destroy io_getevents io_pgetevents
io_pgetevents_time64 io_setup io_submit ioctl ioprio_get ioprio_set ipc kill
landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lchown32
lgetxattr link linkat listen listmount listxattr listxattrat llistxattr _llseek
lremovexattr lseek lsetxattr lstat lstat64 madvise map_shadow_stack membarrier
memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap
mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64
mq_timedsend mq_timedsend_time64 mq_unlink mremap mseal msgctl msgget msgrcv msgsnd
msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat _newselect open
openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free
pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64
process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead
readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg
remap_file_pages removexattr removexattrat rename renameat renameat2 restart_syscall
riscv_hwprobe rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo
rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo
sched_get_priority_max sched_get_priority_min sched_getaffinity sched_getattr
sched_getparam sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64
sched_setaffinity sched_setattr sched_setparam sched_setscheduler sched_yield seccomp
select semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64
sendmmsg sendmsg sendto set_robust_list set_thread_area set_tid_address setfsgid
setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid
setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid
setreuid32 setrlimit setsid setsockopt setuid setuid32 setxattr setxattrat shmat shmctl
shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask sigreturn socketcall
socketpair splice stat stat64 statfs statfs64 statmount statx symlink symlinkat sync
sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete
timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64
timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times
tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat uretprobe utime
utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
`

// seccompCapAllowed are the calls the default profile allows only to a
// process holding the capability.
var seccompCapAllowed = []struct {
	capability string
	names      string
}{
	{"CAP_DAC_READ_SEARCH", "open_by_handle_at"},
	{"CAP_SYS_ADMIN", "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick " +
		"lookup_dcookie lsm_get_self_attr lsm_list_modules lsm_set_self_attr mount " +
		"mount_setattr move_mount open_tree perf_event_open quotactl quotactl_fd " +
		"setdomainname sethostname setns syslog umount umount2 unshare"},
	{"CAP_SYS_BOOT", "reboot"},
	{"CAP_SYS_CHROOT", "chroot"},
	{"CAP_SYS_MODULE", "delete_module init_module finit_module"},
	{"CAP_SYS_PACCT", "acct"},
	{"CAP_SYS_PTRACE", "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace"},
	{"CAP_SYS_RAWIO", "iopl ioperm"},
	{"CAP_SYS_TIME", "settimeofday stime clock_settime clock_settime64"},
	{"CAP_SYS_TTY_CONFIG", "vhangup"},
	{"CAP_SYS_NICE", "get_mempolicy mbind set_mempolicy set_mempolicy_home_node"},
	{"CAP_SYSLOG", "syslog"},
	{"CAP_BPF", "bpf"},
	{"CAP_PERFMON", "perf_event_open"},
}

// seccompArchAllowed are the calls the default profile allows only on
// some architectures (Go's names).
var seccompArchAllowed = []struct {
	arches []string
	names  string
}{
	{[]string{"ppc64le"}, "sync_file_range2 swapcontext"},
	{[]string{"arm", "arm64"}, "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls"},
	{[]string{"amd64", "x32"}, "arch_prctl"},
	{[]string{"amd64", "x32", "x86"}, "modify_ldt"},
	{[]string{"s390", "s390x"}, "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr"},
	{[]string{"riscv64"}, "riscv_flush_icache"},
}

// cloneNamespaceFlags are the clone flags that make new namespaces; a
// process without CAP_SYS_ADMIN may not pass them.
const cloneNamespaceFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP

// Argument values the default profile allows.
var (
	// personality: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32,
	// and 0xffffffff, which only reads the current persona.
	seccompPersonalities = []uint64{0, 0x0008, 0x20000, 0x20008, 0xffffffff}
	// socket: every address family but AF_ALG (38) and AF_VSOCK (40).
	seccompSocketFamilies = []specs.LinuxSeccompArg{
		{Index: 0, Value: unix.AF_ALG, Op: specs.OpLessThan},
		{Index: 0, Value: unix.AF_ALG + 1, Op: specs.OpEqualTo},
		{Index: 0, Value: unix.AF_VSOCK, Op: specs.OpGreaterThan},
	}
)

// DefaultSeccompProfile returns the profile RUN gets unless told
// otherwise: the one Docker ships (moby/profiles seccomp/default.json),
// an allow-list whose default fails a call with EPERM. clone may not make
// namespaces and clone3 fails with ENOSYS (so libc falls back to clone)
// unless the process holds CAP_SYS_ADMIN; personality is limited to the
// values above; io_uring, keyctl, userfaultfd and the mount, module,
// clock and tracing calls are not allowed. The caller owns the result.
func DefaultSeccompProfile() *SeccompProfile {
	eperm, enosys := uint(unix.EPERM), uint(unix.ENOSYS)
	p := &SeccompProfile{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: &eperm,
		ArchMap: []SeccompArchMap{
			{Arch: specs.ArchX86_64, SubArches: []specs.Arch{specs.ArchX86, specs.ArchX32}},
			{Arch: specs.ArchAARCH64, SubArches: []specs.Arch{specs.ArchARM}},
			{Arch: specs.ArchMIPS64, SubArches: []specs.Arch{specs.ArchMIPS, specs.ArchMIPS64N32}},
			{Arch: specs.ArchMIPS64N32, SubArches: []specs.Arch{specs.ArchMIPS, specs.ArchMIPS64}},
			{Arch: specs.ArchMIPSEL64, SubArches: []specs.Arch{specs.ArchMIPSEL, specs.ArchMIPSEL64N32}},
			{Arch: specs.ArchMIPSEL64N32, SubArches: []specs.Arch{specs.ArchMIPSEL, specs.ArchMIPSEL64}},
			{Arch: specs.ArchS390X, SubArches: []specs.Arch{specs.ArchS390}},
			{Arch: specs.ArchRISCV64},
			{Arch: specs.ArchLOONGARCH64},
		},
	}
	allow := func(r SeccompRule) {
		r.Action = specs.ActAllow
		p.Syscalls = append(p.Syscalls, r)
	}
	allow(SeccompRule{Names: strings.Fields(seccompAllowed)})
	allow(SeccompRule{Names: []string{"process_vm_readv", "process_vm_writev", "ptrace"},
		Includes: &SeccompCondition{MinKernel: "4.8"}})
	for _, a := range seccompSocketFamilies {
		allow(SeccompRule{Names: []string{"socket"}, Args: []specs.LinuxSeccompArg{a}})
	}
	for _, v := range seccompPersonalities {
		allow(SeccompRule{Names: []string{"personality"},
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: v, Op: specs.OpEqualTo}}})
	}
	for _, g := range seccompArchAllowed {
		allow(SeccompRule{Names: strings.Fields(g.names), Includes: &SeccompCondition{Arches: g.arches}})
	}
	noSysAdmin := []string{"CAP_SYS_ADMIN"}
	// clone's flags are its first argument, except on s390.
	allow(SeccompRule{Names: []string{"clone"},
		Args:     []specs.LinuxSeccompArg{{Index: 0, Value: cloneNamespaceFlags, Op: specs.OpMaskedEqual}},
		Excludes: &SeccompCondition{Caps: noSysAdmin, Arches: []string{"s390", "s390x"}}})
	allow(SeccompRule{Names: []string{"clone"},
		Args:     []specs.LinuxSeccompArg{{Index: 1, Value: cloneNamespaceFlags, Op: specs.OpMaskedEqual}},
		Includes: &SeccompCondition{Arches: []string{"s390", "s390x"}},
		Excludes: &SeccompCondition{Caps: noSysAdmin}})
	// clone3 passes its flags in memory, where no filter can see them.
	p.Syscalls = append(p.Syscalls, SeccompRule{Names: []string{"clone3"},
		Action: specs.ActErrno, ErrnoRet: &enosys, Excludes: &SeccompCondition{Caps: noSysAdmin}})
	for _, g := range seccompCapAllowed {
		allow(SeccompRule{Names: strings.Fields(g.names), Includes: &SeccompCondition{Caps: []string{g.capability}}})
	}
	return p
}
