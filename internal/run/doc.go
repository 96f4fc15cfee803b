// Package run starts a process in a prepared root filesystem, either through
// an OCI runtime (runc, crun) with a generated runtime-spec bundle, or with
// the built-in chroot isolation that re-executes the kiln binary into new
// mount, pid, uts and ipc (and optionally network) namespaces.
//
// The caller owns the root filesystem (it is mounted before Run and
// unmounted after) and a scratch directory, Options.RunDir, in which Run
// writes the bundle, the generated /etc/hosts, /etc/resolv.conf and
// /etc/hostname, and the OCI runtime's state. Run removes what it creates
// there. Files and directories Run has to create inside the root filesystem
// only to have something to mount on are removed again after the run, so
// a committed layer does not change because a process ran in it.
//
// A binary that uses the chroot isolation must call IsReexec first thing
// in main and, when it reports true, exit with the status Reexec returns.
//
// Both isolations apply the same policy: Docker's default capabilities
// (CapAdd/CapDrop on top, a non-root user gets none), the OCI default
// masked and read-only paths, the default devices only, and Docker's
// default seccomp profile (DefaultSeccompProfile: an allow-list whose
// default is EPERM, with argument filters on clone, personality and
// socket, and calls unlocked by capabilities), resolved for the process's
// capabilities. Options.Security replaces the profile (a Docker/OCI JSON
// file) or turns it off, sets no_new_privs and changes the masked paths.
// runc loads the profile from the bundle; the chroot isolation compiles it
// to BPF itself (see seccomp_bpf.go) and loads it on the thread that forks
// the command, so kiln's own pid 1 is not filtered. Every path inside the root
// filesystem is resolved with openat2(RESOLVE_IN_ROOT) and mounted through
// its file descriptor, so a symlink in an image cannot redirect a mount or
// a read onto the host.
//
// Leaks: the chroot isolation's mounts live in the child's private mount
// namespace, and the child dies with its parent (parent-death signal), so
// killing kiln with SIGKILL leaves no mounts on the host. The OCI runtime is
// killed with its parent too, but the container's processes are not; a
// container left behind (its state lives under RunDir) is deleted with
// "runc delete --force" by the next Run that uses the same RunDir, or by
// Cleanup, which also removes a dead run's bundle and /etc files (a lock
// file per run, taken before anything is written, tells a dead run from a
// live one). Whoever removes a working container should call Cleanup on
// its RunDir first. Mount points Run created in the root filesystem are
// not removed when kiln is killed.
//
// Terminal: runc allocates the pty itself; the chroot isolation does as
// runc does: the child opens a pty in the container's own devpts, makes it
// the command's controlling terminal and sends the master to kiln, which
// puts its own terminal in raw mode, relays both ways and passes the
// window size on at the start and on SIGWINCH, and restores the terminal
// afterwards.
//
// Limits: the chroot seccomp filter knows only the native call table
// (amd64, arm64; elsewhere only seccomp=unconfined runs), so 32-bit
// (i386, x32, arm) system calls fail with ENOSYS, and it cannot hand
// calls to a seccomp agent (SCMP_ACT_NOTIFY). Two concurrent runs in one root
// filesystem can remove each other's mount points when one ends.
package run
