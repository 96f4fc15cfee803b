//go:build !amd64 && !arm64

package run

// No call table here: the chroot isolation runs only unconfined.
const (
	seccompAuditArch = 0
	seccompX32Bit    = 0
)

var syscallNumbers map[string]uint32
