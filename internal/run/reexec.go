package run

// IsReexec reports whether this process is the chroot isolation's child.
// Placeholder until the chroot isolation lands.
func IsReexec() bool { return false }

// Reexec runs the chroot isolation's child and returns its exit status.
func Reexec() int { return 127 }
