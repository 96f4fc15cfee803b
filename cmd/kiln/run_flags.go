package main

import (
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/pflag"

	"github.com/kiln-build/kiln/internal/run"
)

// runSettingsFlags are Buildah's options for the processes a verb runs
// (build's RUN steps; from's later runs): namespaces, resource limits,
// DNS and /etc/hosts, devices, OCI hooks and runtime flags.
type runSettingsFlags struct {
	AddHost, DNS, DNSOption, DNSSearch, Ulimit, Device, HooksDir, RuntimeFlags []string
	NoHosts                                                                    bool
	Memory, MemorySwap, ShmSize, CgroupParent, CPUSetCPUs, CPUSetMems          string
	CPUShares, CPUPeriod                                                       uint64
	CPUQuota                                                                   int64
	PID, IPC, UTS, Cgroupns                                                    string
}

func (r *runSettingsFlags) add(f *pflag.FlagSet) {
	f.StringSliceVar(&r.AddHost, "add-host", nil, "add a custom host-to-IP mapping (HOST:IP) to /etc/hosts")
	f.BoolVar(&r.NoHosts, "no-hosts", false, "do not create /etc/hosts; keep the image's")
	f.StringSliceVar(&r.DNS, "dns", nil, "set nameservers in /etc/resolv.conf")
	f.StringSliceVar(&r.DNSOption, "dns-option", nil, "set options in /etc/resolv.conf")
	f.StringSliceVar(&r.DNSSearch, "dns-search", nil, "set search domains in /etc/resolv.conf")
	f.StringVarP(&r.Memory, "memory", "m", "", "memory limit (format: <number>[<unit>], where unit = b, k, m or g)")
	f.StringVar(&r.MemorySwap, "memory-swap", "", "memory plus swap limit; -1 for unlimited swap")
	f.StringVar(&r.ShmSize, "shm-size", "65536k", "size of /dev/shm")
	f.Uint64VarP(&r.CPUShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	f.Uint64Var(&r.CPUPeriod, "cpu-period", 0, "limit the CPU CFS (Completely Fair Scheduler) period")
	f.Int64Var(&r.CPUQuota, "cpu-quota", 0, "limit the CPU CFS (Completely Fair Scheduler) quota")
	f.StringVar(&r.CPUSetCPUs, "cpuset-cpus", "", "CPUs in which to allow execution (0-3, 0,1)")
	f.StringVar(&r.CPUSetMems, "cpuset-mems", "", "memory nodes (MEMs) in which to allow execution (0-3, 0,1)")
	f.StringVar(&r.CgroupParent, "cgroup-parent", "", "cgroup the RUN processes' cgroup is made in")
	f.StringSliceVar(&r.Ulimit, "ulimit", nil, "ulimit options (NAME=SOFT[:HARD])")
	f.StringArrayVar(&r.Device, "device", nil, "additional devices to provide (HOST[:CONTAINER][:PERMISSIONS])")
	f.StringArrayVar(&r.HooksDir, "hooks-dir", nil, "directory of OCI hooks (JSON files) to run")
	f.StringArrayVar(&r.RuntimeFlags, "runtime-flag", nil, "global option for the OCI runtime, without its leading dashes (debug, systemd-cgroup)")
	f.StringVar(&r.PID, "pid", "", "private or host: the PID namespace RUN processes get")
	f.StringVar(&r.IPC, "ipc", "", "private or host: the IPC namespace RUN processes get")
	f.StringVar(&r.UTS, "uts", "", "private or host: the UTS namespace RUN processes get")
	f.StringVar(&r.Cgroupns, "cgroupns", "", "private or host: the cgroup namespace RUN processes get")
}

// settings turns the flags into run settings; network is the --network
// asked for, whose "none" excludes the DNS flags.
func (r runSettingsFlags) settings(f *pflag.FlagSet, network run.Network) (run.Settings, error) {
	var s run.Settings
	for _, d := range []struct {
		flag string
		v    []string
		to   *[]string
	}{{"--dns", r.DNS, &s.DNSServers}, {"--dns-option", r.DNSOption, &s.DNSOptions}, {"--dns-search", r.DNSSearch, &s.DNSSearch}} {
		if len(d.v) == 0 {
			continue
		}
		if network == run.NetworkNone {
			return s, usageErrorf("the %s option cannot be used with --network=none", d.flag)
		}
		*d.to = d.v
	}
	if r.NoHosts && len(r.AddHost) > 0 {
		return s, usageErrorf("--no-hosts and --add-host conflict, can not be used together")
	}
	for _, h := range r.AddHost {
		if _, _, err := run.ParseHost(h); err != nil {
			return s, usageErrorf("--add-host: %v", err)
		}
	}
	s.AddHosts, s.NoHosts = r.AddHost, r.NoHosts
	var err error
	if s.Resources, err = r.resources(f); err != nil {
		return s, err
	}
	s.CgroupParent = r.CgroupParent
	if f.Changed("shm-size") {
		if s.ShmSize, err = run.ParseSize(r.ShmSize); err != nil {
			return s, usageErrorf("--shm-size: %v", err)
		}
	}
	for _, u := range r.Ulimit {
		l, err := run.ParseUlimit(u)
		if err != nil {
			return s, usageErrorf("--ulimit: %v", err)
		}
		s.Rlimits = append(s.Rlimits, l)
	}
	for _, d := range r.Device {
		devs, perms, err := run.ParseDevice(d)
		if err != nil {
			return s, usageErrorf("--device: %v", err)
		}
		for _, dev := range devs {
			s.Devices = append(s.Devices, dev)
			if s.Resources == nil {
				s.Resources = &specs.LinuxResources{}
			}
			major, minor := dev.Major, dev.Minor
			s.Resources.Devices = append(s.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: dev.Type, Major: &major, Minor: &minor, Access: perms})
		}
	}
	if len(r.HooksDir) > 0 {
		if s.Hooks, err = run.ReadHooks(r.HooksDir); err != nil {
			return s, usageErrorf("--hooks-dir: %v", err)
		}
	}
	for _, fl := range r.RuntimeFlags {
		s.RuntimeArgs = append(s.RuntimeArgs, "--"+strings.TrimLeft(fl, "-"))
	}
	for _, ns := range []struct {
		flag, v string
		to      *bool
	}{{"pid", r.PID, &s.HostPID}, {"ipc", r.IPC, &s.HostIPC}, {"uts", r.UTS, &s.HostUTS}} {
		if *ns.to, err = run.ParseNamespace(ns.flag, ns.v); err != nil {
			return s, usageErrorf("%v", err)
		}
	}
	host, err := run.ParseNamespace("cgroupns", r.Cgroupns)
	if err != nil {
		return s, usageErrorf("%v", err)
	}
	s.PrivateCgroupNS = r.Cgroupns != "" && !host
	return s, nil
}

// resources are the cgroup limits the flags ask for; nil when none.
func (r runSettingsFlags) resources(f *pflag.FlagSet) (*specs.LinuxResources, error) {
	res := &specs.LinuxResources{}
	set := false
	if r.Memory != "" {
		n, err := run.ParseSize(r.Memory)
		if err != nil {
			return nil, usageErrorf("--memory: %v", err)
		}
		res.Memory, set = &specs.LinuxMemory{Limit: &n}, true
	}
	if r.MemorySwap != "" {
		n := int64(-1)
		if r.MemorySwap != "-1" {
			var err error
			if n, err = run.ParseSize(r.MemorySwap); err != nil {
				return nil, usageErrorf("--memory-swap: %v", err)
			}
		}
		if res.Memory == nil {
			if n != -1 {
				return nil, usageErrorf("--memory-swap needs --memory")
			}
		} else {
			if n != -1 && n < *res.Memory.Limit {
				return nil, usageErrorf("--memory-swap must be at least --memory")
			}
			res.Memory.Swap = &n
		}
	}
	cpu := &specs.LinuxCPU{}
	cpuSet := false
	if f.Changed("cpu-shares") {
		v := r.CPUShares
		cpu.Shares, cpuSet = &v, true
	}
	if f.Changed("cpu-period") {
		v := r.CPUPeriod
		cpu.Period, cpuSet = &v, true
	}
	if f.Changed("cpu-quota") {
		v := r.CPUQuota
		cpu.Quota, cpuSet = &v, true
	}
	if r.CPUSetCPUs != "" {
		cpu.Cpus, cpuSet = r.CPUSetCPUs, true
	}
	if r.CPUSetMems != "" {
		cpu.Mems, cpuSet = r.CPUSetMems, true
	}
	if cpuSet {
		res.CPU, set = cpu, true
	}
	if !set {
		return nil, nil
	}
	return res, nil
}
