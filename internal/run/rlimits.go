package run

import (
	"os"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/idmap"
)

// defaultNofile is the open-files limit Buildah 1.28's runs get unless
// --ulimit says otherwise: the runtime-tools default spec's 1024:1024.
const defaultNofile = 1024

// DefaultRlimits are the resource limits Buildah 1.28 gives the processes
// `buildah run` starts when neither --ulimit nor containers.conf sets
// them: RLIMIT_NOFILE 1024:1024 (the default runtime spec's) and
// RLIMIT_NPROC pid_max:pid_max (containers.conf's default_ulimits as
// containers/common computes it). A limit this process cannot give (its
// own hard limit is lower and it may not raise it: no CAP_SYS_RESOURCE
// in the initial user namespace) is lowered to its hard limit for
// nofile, where Buildah's runtime would fail to start the process, and
// left out for nproc, as containers/common leaves it out.
func DefaultRlimits() []specs.POSIXRlimit {
	raise := canRaiseRlimits()
	var out []specs.POSIXRlimit
	var cur unix.Rlimit
	nofile := uint64(defaultNofile)
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &cur) == nil && cur.Max < nofile && !raise {
		nofile = cur.Max
	}
	out = append(out, specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Soft: nofile, Hard: nofile})
	if pids, ok := pidMax(); ok && unix.Getrlimit(unix.RLIMIT_NPROC, &cur) == nil && (pids <= cur.Max || raise) {
		out = append(out, specs.POSIXRlimit{Type: "RLIMIT_NPROC", Soft: pids, Hard: pids})
	}
	return out
}

// WithDefaultRlimits returns limits with each of DefaultRlimits whose
// type limits does not set added first, as Buildah puts --ulimit over
// its defaults.
func WithDefaultRlimits(limits []specs.POSIXRlimit) []specs.POSIXRlimit {
	var out []specs.POSIXRlimit
	for _, d := range DefaultRlimits() {
		if !slices.ContainsFunc(limits, func(l specs.POSIXRlimit) bool { return l.Type == d.Type }) {
			out = append(out, d)
		}
	}
	return append(out, limits...)
}

// pidMax is the kernel's /proc/sys/kernel/pid_max.
func pidMax() (uint64, bool) {
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n, err == nil && n > 0
}

// canRaiseRlimits reports whether this process may raise hard resource
// limits: CAP_SYS_RESOURCE, effective, in the initial user namespace.
func canRaiseRlimits() bool {
	if idmap.InUserNamespace() {
		return false
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[unix.CAP_SYS_RESOURCE/32].Effective&(1<<(unix.CAP_SYS_RESOURCE%32)) != 0
}
