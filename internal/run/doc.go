// Package run starts a process in a prepared root filesystem, either through
// an OCI runtime (runc, crun) with a generated runtime-spec bundle, or with
// the built-in chroot isolation that re-executes the kiln binary into new
// namespaces.
//
// CONTRACT (owned by the run package's author; callers rely on it):
//
//	IsReexec() bool   — true when this process was started as the chroot
//	                    isolation's child; main calls it before anything else.
//	Reexec() int      — runs that child and returns its exit status.
//	Run(ctx, Options) (int, error) — see options.go.
package run
