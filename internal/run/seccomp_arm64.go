package run

import "golang.org/x/sys/unix"

// seccompAuditArch is the native architecture the chroot isolation's
// seccomp filter checks; other architectures' calls fail with ENOSYS.
const seccompAuditArch = unix.AUDIT_ARCH_AARCH64

// syscallNumbers maps the denied syscalls' names to their numbers here.
var syscallNumbers = map[string]uint32{
	"add_key":           unix.SYS_ADD_KEY,
	"keyctl":            unix.SYS_KEYCTL,
	"request_key":       unix.SYS_REQUEST_KEY,
	"kexec_file_load":   unix.SYS_KEXEC_FILE_LOAD,
	"kexec_load":        unix.SYS_KEXEC_LOAD,
	"lookup_dcookie":    unix.SYS_LOOKUP_DCOOKIE,
	"nfsservctl":        unix.SYS_NFSSERVCTL,
	"userfaultfd":       unix.SYS_USERFAULTFD,
	"kcmp":              unix.SYS_KCMP,
	"mbind":             unix.SYS_MBIND,
	"set_mempolicy":     unix.SYS_SET_MEMPOLICY,
	"get_mempolicy":     unix.SYS_GET_MEMPOLICY,
	"move_pages":        unix.SYS_MOVE_PAGES,
	"mount":             unix.SYS_MOUNT,
	"umount2":           unix.SYS_UMOUNT2,
	"pivot_root":        unix.SYS_PIVOT_ROOT,
	"unshare":           unix.SYS_UNSHARE,
	"setns":             unix.SYS_SETNS,
	"swapon":            unix.SYS_SWAPON,
	"swapoff":           unix.SYS_SWAPOFF,
	"quotactl":          unix.SYS_QUOTACTL,
	"name_to_handle_at": unix.SYS_NAME_TO_HANDLE_AT,
	"bpf":               unix.SYS_BPF,
	"perf_event_open":   unix.SYS_PERF_EVENT_OPEN,
	"fanotify_init":     unix.SYS_FANOTIFY_INIT,
	"fsopen":            unix.SYS_FSOPEN,
	"fsconfig":          unix.SYS_FSCONFIG,
	"fsmount":           unix.SYS_FSMOUNT,
	"fspick":            unix.SYS_FSPICK,
	"move_mount":        unix.SYS_MOVE_MOUNT,
	"open_tree":         unix.SYS_OPEN_TREE,
	"mount_setattr":     unix.SYS_MOUNT_SETATTR,
	"clone3":            unix.SYS_CLONE3,
	"lsm_set_self_attr": unix.SYS_LSM_SET_SELF_ATTR,
	"open_by_handle_at": unix.SYS_OPEN_BY_HANDLE_AT,
	"init_module":       unix.SYS_INIT_MODULE,
	"finit_module":      unix.SYS_FINIT_MODULE,
	"delete_module":     unix.SYS_DELETE_MODULE,
	"reboot":            unix.SYS_REBOOT,
	"acct":              unix.SYS_ACCT,
	"settimeofday":      unix.SYS_SETTIMEOFDAY,
	"clock_settime":     unix.SYS_CLOCK_SETTIME,
	"clock_adjtime":     unix.SYS_CLOCK_ADJTIME,
	"adjtimex":          unix.SYS_ADJTIMEX,
	"ptrace":            unix.SYS_PTRACE,
	"process_vm_readv":  unix.SYS_PROCESS_VM_READV,
	"process_vm_writev": unix.SYS_PROCESS_VM_WRITEV,
}
