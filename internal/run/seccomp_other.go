//go:build !amd64 && !arm64

package run

// No seccomp filter for the chroot isolation on this architecture.
const seccompAuditArch = 0

var syscallNumbers map[string]uint32
