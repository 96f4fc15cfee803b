package run

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	units "github.com/docker/go-units"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// ErrNeedsOCI is wrapped when a setting only the OCI isolation can apply
// (cgroup limits, hooks, runtime flags, devices) is asked of the chroot
// isolation.
var ErrNeedsOCI = errors.New("needs the oci isolation")

// Settings are what Buildah's build and from options give the processes
// they run besides the command itself: shared namespaces, resource
// limits, /etc/resolv.conf and /etc/hosts entries, devices, OCI hooks and
// runtime flags. The zero value is kiln's default: private namespaces, no
// limits, the host's DNS, a generated /etc/hosts.
type Settings struct {
	// Resources are cgroup limits: memory and swap, CPU shares, quota,
	// period and sets. The OCI isolation applies them.
	Resources *specs.LinuxResources
	// CgroupParent is the cgroup the run's cgroup is made in (OCI).
	CgroupParent string
	// Rlimits are the process's resource limits (ulimit); both
	// isolations apply them.
	Rlimits []specs.POSIXRlimit
	// ShmSize is /dev/shm's size in bytes; 0 means 64 MiB.
	ShmSize int64
	// Devices are host device nodes made in the container's /dev, with
	// the cgroup access their permissions give (OCI).
	Devices []specs.LinuxDevice
	// DNSServers, DNSSearch and DNSOptions replace the host's nameserver,
	// search and options lines in /etc/resolv.conf when set. They need a
	// network namespace that can reach a resolver: not NetworkNone.
	DNSServers, DNSSearch, DNSOptions []string
	// AddHosts are /etc/hosts entries, each "NAME:IP" (see ParseHost).
	AddHosts []string
	// NoHosts leaves the image's /etc/hosts as it is instead of making one;
	// it excludes AddHosts.
	NoHosts bool
	// Hooks are OCI hooks the runtime runs around the process (OCI).
	Hooks *specs.Hooks
	// RuntimeArgs are global options for the OCI runtime, before its
	// command ("--debug", "--systemd-cgroup").
	RuntimeArgs []string
	// HostPID, HostIPC and HostUTS share the host's namespace instead of
	// making a new one.
	HostPID, HostIPC, HostUTS bool
	// PrivateCgroupNS gives the process a cgroup namespace of its own
	// (OCI); by default it sees the host's cgroup paths.
	PrivateCgroupNS bool
}

// check refuses settings the isolation cannot apply, and contradictions.
func (s Settings) check(iso Isolation, net Network) error {
	if s.NoHosts && len(s.AddHosts) > 0 {
		return errors.New("--no-hosts and --add-host conflict, can not be used together")
	}
	if net == NetworkNone && (len(s.DNSServers) > 0 || len(s.DNSSearch) > 0 || len(s.DNSOptions) > 0) {
		return errors.New("DNS settings cannot be used with network none")
	}
	for _, h := range s.AddHosts {
		if _, _, err := ParseHost(h); err != nil {
			return err
		}
	}
	if iso != IsolationChroot {
		return nil
	}
	var what []string
	if s.Resources != nil {
		what = append(what, "cgroup resource limits")
	}
	if s.CgroupParent != "" {
		what = append(what, "a cgroup parent")
	}
	if len(s.Devices) > 0 {
		what = append(what, "devices")
	}
	if s.Hooks != nil {
		what = append(what, "OCI hooks")
	}
	if len(s.RuntimeArgs) > 0 {
		what = append(what, "runtime flags")
	}
	if s.PrivateCgroupNS {
		what = append(what, "a private cgroup namespace")
	}
	if len(what) > 0 {
		return fmt.Errorf("%s: %w", strings.Join(what, ", "), ErrNeedsOCI)
	}
	return nil
}

// ParseHost parses an /etc/hosts entry "NAME:IP" (the IP may be IPv6,
// and hold colons itself).
func ParseHost(s string) (name string, ip netip.Addr, err error) {
	name, addr, ok := strings.Cut(s, ":")
	if !ok || name == "" {
		return "", netip.Addr{}, fmt.Errorf("bad host entry %q: want NAME:IP", s)
	}
	ip, err = netip.ParseAddr(strings.Trim(addr, "[]"))
	if err != nil {
		return "", netip.Addr{}, fmt.Errorf("bad host entry %q: %w", s, err)
	}
	return name, ip, nil
}

// rlimitNames maps ulimit names to the POSIX resource names runc takes.
var rlimitNames = map[string]string{
	"core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA", "fsize": "RLIMIT_FSIZE",
	"locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK", "msgqueue": "RLIMIT_MSGQUEUE",
	"nice": "RLIMIT_NICE", "nofile": "RLIMIT_NOFILE", "nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS",
	"rtprio": "RLIMIT_RTPRIO", "rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING",
	"stack": "RLIMIT_STACK", "as": "RLIMIT_AS",
}

// rlimitNumbers maps POSIX resource names to setrlimit's resources.
var rlimitNumbers = map[string]int{
	"RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU, "RLIMIT_DATA": unix.RLIMIT_DATA,
	"RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS, "RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK,
	"RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE, "RLIMIT_NOFILE": unix.RLIMIT_NOFILE,
	"RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_RSS": unix.RLIMIT_RSS, "RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO,
	"RLIMIT_RTTIME": unix.RLIMIT_RTTIME, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK": unix.RLIMIT_STACK, "RLIMIT_AS": unix.RLIMIT_AS,
}

// ParseUlimit parses Docker's --ulimit: "NAME=SOFT[:HARD]", -1 meaning
// unlimited; without HARD, the hard limit is SOFT.
func ParseUlimit(s string) (specs.POSIXRlimit, error) {
	name, val, ok := strings.Cut(s, "=")
	typ, known := rlimitNames[name]
	if !ok || !known {
		return specs.POSIXRlimit{}, fmt.Errorf("bad ulimit %q: want NAME=SOFT[:HARD] with a NAME such as nofile, nproc or cpu", s)
	}
	softS, hardS, hasHard := strings.Cut(val, ":")
	if !hasHard {
		hardS = softS
	}
	limit := func(v string) (uint64, error) {
		if v == "-1" || v == "unlimited" {
			return unix.RLIM_INFINITY, nil
		}
		return strconv.ParseUint(v, 10, 64)
	}
	soft, err := limit(softS)
	if err != nil {
		return specs.POSIXRlimit{}, fmt.Errorf("bad ulimit %q: %w", s, err)
	}
	hard, err := limit(hardS)
	if err != nil {
		return specs.POSIXRlimit{}, fmt.Errorf("bad ulimit %q: %w", s, err)
	}
	if soft > hard {
		return specs.POSIXRlimit{}, fmt.Errorf("bad ulimit %q: the soft limit is above the hard limit", s)
	}
	return specs.POSIXRlimit{Type: typ, Soft: soft, Hard: hard}, nil
}

// ParseDevice parses --device "HOST[:CONTAINER][:PERMISSIONS]" (permissions
// of r, w and m, default rwm) and reads the host device's type and
// numbers. HOST may be a directory: every device below it is added, at
// the same place below CONTAINER, as Buildah and Podman add them.
func ParseDevice(s string) ([]specs.LinuxDevice, string, error) {
	parts := strings.Split(s, ":")
	if len(parts) > 3 || parts[0] == "" {
		return nil, "", fmt.Errorf("bad device %q: want HOST[:CONTAINER][:PERMISSIONS]", s)
	}
	src, dst, perms := parts[0], parts[0], "rwm"
	isPerms := func(p string) bool { return p != "" && strings.Trim(p, "rwm") == "" }
	switch {
	case len(parts) == 2 && isPerms(parts[1]):
		perms = parts[1]
	case len(parts) >= 2:
		dst = parts[1]
	}
	if len(parts) == 3 {
		if !isPerms(parts[2]) {
			return nil, "", fmt.Errorf("bad device %q: permissions are made of r, w and m", s)
		}
		perms = parts[2]
	}
	if !filepath.IsAbs(dst) {
		return nil, "", fmt.Errorf("bad device %q: the container path must be absolute", s)
	}
	if fi, err := os.Stat(src); err == nil && fi.IsDir() {
		devs, err := devicesIn(src, dst)
		return devs, perms, err
	}
	d, err := device(src, dst)
	if err != nil {
		return nil, "", err
	}
	return []specs.LinuxDevice{d}, perms, nil
}

// devicesIn lists the devices below directory src, placed below dst.
func devicesIn(src, dst string) ([]specs.LinuxDevice, error) {
	var out []specs.LinuxDevice
	err := filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.Type()&(fs.ModeDevice|fs.ModeCharDevice) == 0 {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		d, err := device(p, filepath.Join(dst, rel))
		out = append(out, d)
		return err
	})
	if err == nil && len(out) == 0 {
		err = fmt.Errorf("device %s: a directory with no devices in it", src)
	}
	return out, err
}

// device reads host device src, to be made at dst.
func device(src, dst string) (specs.LinuxDevice, error) {
	var st unix.Stat_t
	if err := unix.Stat(src, &st); err != nil {
		return specs.LinuxDevice{}, fmt.Errorf("device %s: %w", src, err)
	}
	d := specs.LinuxDevice{Path: dst, Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev))}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		d.Type = "c"
	case unix.S_IFBLK:
		d.Type = "b"
	default:
		return specs.LinuxDevice{}, fmt.Errorf("device %s: not a character or block device", src)
	}
	mode := os.FileMode(st.Mode & 0o777)
	uid, gid := st.Uid, st.Gid
	d.FileMode, d.UID, d.GID = &mode, &uid, &gid
	return d, nil
}

// ParseSize parses a size such as "64m" or "1g" (binary units, as
// Docker's --memory and --shm-size read them).
func ParseSize(s string) (int64, error) {
	n, err := units.RAMInBytes(s)
	if err != nil {
		return 0, fmt.Errorf("bad size %q: %w", s, err)
	}
	return n, nil
}

// ociHook is one hook file of the OCI hooks directory format (version
// 1.0.0, as podman and Buildah read it from --hooks-dir).
type ociHook struct {
	Version string     `json:"version"`
	Hook    specs.Hook `json:"hook"`
	When    struct {
		Always   *bool             `json:"always"`
		Commands []string          `json:"commands"`
		HasMount *bool             `json:"hasBindMounts"`
		Annot    map[string]string `json:"annotations"`
	} `json:"when"`
	Stages []string `json:"stages"`
}

// ReadHooks reads the *.json hook files of dirs (later directories win
// for a file of the same name) and returns the hooks that always run, by
// stage. Hooks conditioned on commands, annotations or bind mounts are
// not supported and are refused.
func ReadHooks(dirs []string) (*specs.Hooks, error) {
	files := map[string]string{}
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("reading hooks directory: %w", err)
		}
		for _, e := range entries {
			if !e.IsDir() && strings.HasSuffix(e.Name(), ".json") {
				files[e.Name()] = filepath.Join(dir, e.Name())
			}
		}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	hooks := &specs.Hooks{}
	for _, n := range names {
		b, err := os.ReadFile(files[n])
		if err != nil {
			return nil, err
		}
		var h ociHook
		if err := json.Unmarshal(b, &h); err != nil {
			return nil, fmt.Errorf("hook %s: %w", files[n], err)
		}
		if h.Version != "1.0.0" {
			return nil, fmt.Errorf("hook %s: version %q: only 1.0.0 is supported", files[n], h.Version)
		}
		if h.Hook.Path == "" {
			return nil, fmt.Errorf("hook %s: no hook.path", files[n])
		}
		if len(h.When.Commands) > 0 || len(h.When.Annot) > 0 || h.When.HasMount != nil {
			return nil, fmt.Errorf("hook %s: only hooks that always run are supported (when.always)", files[n])
		}
		if h.When.Always == nil || !*h.When.Always {
			continue
		}
		for _, stage := range h.Stages {
			switch stage {
			case "prestart":
				hooks.Prestart = append(hooks.Prestart, h.Hook)
			case "createRuntime":
				hooks.CreateRuntime = append(hooks.CreateRuntime, h.Hook)
			case "createContainer":
				hooks.CreateContainer = append(hooks.CreateContainer, h.Hook)
			case "startContainer":
				hooks.StartContainer = append(hooks.StartContainer, h.Hook)
			case "poststart":
				hooks.Poststart = append(hooks.Poststart, h.Hook)
			case "poststop":
				hooks.Poststop = append(hooks.Poststop, h.Hook)
			default:
				return nil, fmt.Errorf("hook %s: unknown stage %q", files[n], stage)
			}
		}
	}
	return hooks, nil
}

// ParseNamespace parses --pid, --ipc, --uts and --cgroupns: "private"
// (or "") makes a new namespace, "host" shares the host's.
func ParseNamespace(flag, s string) (host bool, err error) {
	switch s {
	case "", "private":
		return false, nil
	case "host":
		return true, nil
	}
	return false, fmt.Errorf("--%s %q: use private or host", flag, s)
}

// applySettings applies the settings to the OCI runtime's spec.
func (p *plan) applySettings(spec *specs.Spec) {
	s := p.o.Settings
	host := map[specs.LinuxNamespaceType]bool{specs.PIDNamespace: s.HostPID, specs.IPCNamespace: s.HostIPC, specs.UTSNamespace: s.HostUTS}
	spec.Linux.Namespaces = slices.DeleteFunc(spec.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return host[n.Type] })
	if s.PrivateCgroupNS {
		spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	if s.HostUTS {
		spec.Hostname = "" // runc sets no hostname outside a UTS namespace of its own
	}
	if r := s.Resources; r != nil {
		res := spec.Linux.Resources
		res.Memory, res.CPU, res.Pids = r.Memory, r.CPU, r.Pids
		res.Devices = append(res.Devices, r.Devices...)
	}
	if s.CgroupParent != "" {
		spec.Linux.CgroupsPath = path.Join("/", s.CgroupParent, p.id)
	}
	spec.Process.Rlimits = s.Rlimits
	spec.Linux.Devices = s.Devices
	spec.Hooks = s.Hooks
	for i, m := range spec.Mounts {
		if m.Destination == "/dev/shm" && m.Type == "tmpfs" {
			opts := slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return strings.HasPrefix(o, "size=") })
			spec.Mounts[i].Options = append(opts, shmSizeOption(s.ShmSize))
		}
	}
}

// shmSizeOption is the tmpfs size option of /dev/shm.
func shmSizeOption(size int64) string {
	if size <= 0 {
		return "size=65536k"
	}
	return fmt.Sprintf("size=%d", size)
}

// resolvConf rewrites the generated resolv.conf with the DNS settings:
// each set replaces the lines of its kind.
func (s Settings) resolvConf(b []byte) []byte {
	if len(s.DNSServers) == 0 && len(s.DNSSearch) == 0 && len(s.DNSOptions) == 0 {
		return b
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
			continue
		case f[0] == "nameserver" && len(s.DNSServers) > 0,
			(f[0] == "search" || f[0] == "domain") && len(s.DNSSearch) > 0,
			f[0] == "options" && len(s.DNSOptions) > 0:
			continue
		}
		out = append(out, line)
	}
	if len(s.DNSSearch) > 0 {
		out = append(out, "search "+strings.Join(s.DNSSearch, " "))
	}
	for _, ns := range s.DNSServers {
		out = append(out, "nameserver "+ns)
	}
	if len(s.DNSOptions) > 0 {
		out = append(out, "options "+strings.Join(s.DNSOptions, " "))
	}
	return []byte(strings.Join(out, "\n") + "\n")
}

// chrootCloneFlags are the namespaces the chroot isolation's child gets.
func (s Settings) chrootCloneFlags() int {
	flags := unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC
	if s.HostPID {
		flags &^= unix.CLONE_NEWPID
	}
	if s.HostUTS {
		flags &^= unix.CLONE_NEWUTS
	}
	if s.HostIPC {
		flags &^= unix.CLONE_NEWIPC
	}
	return flags
}

// setRlimits sets the resource limits of the calling process (the chroot
// isolation's child, before it starts the command, which inherits them).
func setRlimits(limits []specs.POSIXRlimit) error {
	for _, l := range limits {
		n, ok := rlimitNumbers[l.Type]
		if !ok {
			return fmt.Errorf("unknown rlimit %s", l.Type)
		}
		if err := unix.Setrlimit(n, &unix.Rlimit{Cur: l.Soft, Max: l.Hard}); err != nil {
			return fmt.Errorf("setting %s: %w", l.Type, err)
		}
	}
	return nil
}
