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
// Leaks: the chroot isolation's mounts live in the child's private mount
// namespace, and the child dies with its parent (parent-death signal), so
// killing kiln with SIGKILL leaves no mounts on the host. The OCI runtime is
// killed with its parent too; a container it leaves behind (its state lives
// under RunDir) is deleted with "runc delete --force" by the next Run that
// uses the same RunDir.
package run
