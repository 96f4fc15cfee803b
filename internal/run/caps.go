package run

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// capNames lists the Linux capabilities by number.
var capNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// DefaultCapabilities is the capability set a root process gets without
// CapAdd/CapDrop: Docker's default set (Buildah's older default, a
// superset of its current one). A non-root process gets none, as in Docker.
var DefaultCapabilities = []string{
	"CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_MKNOD", "CAP_NET_BIND_SERVICE",
	"CAP_NET_RAW", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP",
	"CAP_SETUID", "CAP_SYS_CHROOT",
}

// canonCap turns "chown", "CAP_CHOWN" or "ALL" into "CAP_CHOWN" or "ALL".
func canonCap(s string) (string, error) {
	c := strings.ToUpper(strings.TrimSpace(s))
	if c == "ALL" {
		return c, nil
	}
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	if !slices.Contains(capNames, c) {
		return "", fmt.Errorf("unknown capability %q", s)
	}
	return c, nil
}

// resolveCaps applies add and drop to the default set the way Docker does
// (drop ALL then add some keeps only those; add ALL gives every
// capability), and keeps only capabilities this process can grant.
func resolveCaps(add, drop []string) ([]string, error) {
	set := map[string]bool{}
	for _, c := range DefaultCapabilities {
		set[c] = true
	}
	for _, d := range drop {
		c, err := canonCap(d)
		if err != nil {
			return nil, fmt.Errorf("dropping capability: %w", err)
		}
		if c == "ALL" {
			clear(set)
			continue
		}
		delete(set, c)
	}
	for _, a := range add {
		c, err := canonCap(a)
		if err != nil {
			return nil, fmt.Errorf("adding capability: %w", err)
		}
		if c == "ALL" {
			for _, n := range capNames {
				set[n] = true
			}
			continue
		}
		set[c] = true
	}
	bound := boundingSet()
	var out []string
	for i, n := range capNames {
		if set[n] && bound&(1<<uint(i)) != 0 {
			out = append(out, n)
		}
	}
	return out, nil
}

// boundingSet returns this process's capability bounding set as a mask;
// all bits when it cannot be read.
func boundingSet() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return ^uint64(0)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err == nil {
				return n
			}
		}
	}
	return ^uint64(0)
}

// capMask turns capability names into a bit mask.
func capMask(names []string) uint64 {
	var m uint64
	for _, n := range names {
		if i := slices.Index(capNames, n); i >= 0 {
			m |= 1 << uint(i)
		}
	}
	return m
}
