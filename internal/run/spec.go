package run

import (
	"fmt"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/kiln-build/kiln/internal/idmap"
)

// maskedPaths and readonlyPaths are the OCI/Docker defaults.
var (
	maskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore",
		"/proc/keys", "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi",
		"/proc/timer_list", "/proc/timer_stats", "/sys/devices/virtual/powercap",
		"/sys/firmware", "/sys/fs/selinux",
	}
	readonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// baseMounts are the kernel filesystems every container gets.
func baseMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
	}
}

// ociSpec builds the runtime-spec configuration for p.
func (p *plan) ociSpec() *specs.Spec {
	caps := slices.Clone(p.caps)
	capSet := &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}
	ns := []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.MountNamespace}}
	if p.net != nil {
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: fmt.Sprintf("/proc/%d/ns/net", p.net.holder.Process.Pid)})
	} else if p.newNet {
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	}
	mounts := baseMounts()
	if !idmap.InUserNamespace() {
		// The process's own cgroups, read-only, as runc's default spec,
		// Docker and Buildah have them.
		mounts = append(mounts, specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup",
			Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}})
	}
	mounts = append(mounts, p.mounts...)
	if !p.newNet && idmap.InUserNamespace() {
		// sysfs mounts only in a network namespace the user namespace
		// owns: a rootless run on the host's network binds the host's
		// /sys, read-only, as Buildah does.
		mounts[slices.IndexFunc(mounts, func(m specs.Mount) bool { return m.Destination == "/sys" })] = specs.Mount{
			Destination: "/sys", Type: "bind", Source: "/sys", Options: []string{"rbind", "nosuid", "noexec", "nodev", "ro"},
		}
	}
	deny := false
	spec := &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Terminal:    p.o.Terminal,
			ConsoleSize: p.consoleSize,
			User: specs.User{
				UID: p.user.UID, GID: p.user.GID, AdditionalGids: p.user.Groups,
			},
			Args:            p.o.Args,
			Env:             p.env,
			Cwd:             p.cwd,
			Capabilities:    capSet,
			NoNewPrivileges: p.o.Security.NoNewPrivileges,
		},
		Root:     &specs.Root{Path: p.o.Rootfs},
		Hostname: p.hostname,
		Mounts:   mounts,
		Linux: &specs.Linux{
			Namespaces: ns,
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: deny, Access: "rwm"}},
			},
			Seccomp:       p.seccomp,
			MaskedPaths:   p.masked,
			ReadonlyPaths: p.readonly,
		},
	}
	p.applySettings(spec)
	return spec
}
