package run

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Sentinel errors. The CLI maps ErrNotFound to exit status 127,
// ErrNotExecutable to 126 and every other error to 125.
var (
	// ErrNotFound means the command does not exist in the root filesystem.
	ErrNotFound = errors.New("command not found")
	// ErrNotExecutable means the command exists but cannot be executed.
	ErrNotExecutable = errors.New("command not executable")
	// ErrRuntimeNotFound means the OCI runtime binary is absent.
	ErrRuntimeNotFound = errors.New("oci runtime not found")
	// ErrUnknownUser means the user or group is not in the root filesystem.
	ErrUnknownUser = errors.New("unknown user")
	// ErrBadWorkingDir means the working directory cannot be used.
	ErrBadWorkingDir = errors.New("bad working directory")
	// ErrBadMount means a volume or mount specification is invalid.
	ErrBadMount = errors.New("bad mount")
)

// Isolation selects how the process is isolated.
type Isolation int

const (
	// IsolationOCI runs the process with an OCI runtime (runc, crun).
	IsolationOCI Isolation = iota
	// IsolationChroot runs the process with kiln's built-in isolation.
	IsolationChroot
)

// ParseIsolation parses "oci" (also "runc", "default") or "chroot".
func ParseIsolation(s string) (Isolation, error) {
	switch strings.ToLower(s) {
	case "oci", "runc", "default":
		return IsolationOCI, nil
	case "chroot":
		return IsolationChroot, nil
	}
	return 0, fmt.Errorf("unknown isolation %q: use oci or chroot", s)
}

// String returns "oci" or "chroot".
func (i Isolation) String() string {
	if i == IsolationChroot {
		return "chroot"
	}
	return "oci"
}

// DefaultIsolation returns IsolationOCI when runc or crun is in PATH and kiln
// does not itself run inside a container, IsolationChroot otherwise.
func DefaultIsolation() Isolation {
	if InContainer() {
		return IsolationChroot
	}
	for _, name := range []string{"runc", "crun"} {
		if _, err := exec.LookPath(name); err == nil {
			return IsolationOCI
		}
	}
	return IsolationChroot
}

// InContainer reports whether this process seems to run inside a container
// (Docker, Podman, Kubernetes, LXC, systemd-nspawn, plain runc or crun):
// by the markers runtimes leave (/.dockerenv, /run/.containerenv, the
// container variable), by pid 1's cgroup, or by the root mount (a
// directory bind-mounted as / by pivot_root, or an overlay made by a
// container store).
func InContainer() bool {
	for _, f := range []string{"/.dockerenv", "/run/.containerenv"} {
		if _, err := os.Lstat(f); err == nil {
			return true
		}
	}
	if os.Getenv("container") != "" {
		return true
	}
	if b, err := os.ReadFile("/proc/1/environ"); err == nil {
		for kv := range strings.SplitSeq(string(b), "\x00") {
			if strings.HasPrefix(kv, "container=") {
				return true
			}
		}
	}
	if ms, err := mountinfo.GetMounts(rootMounts); err == nil && containerRootMount(ms) {
		return true
	}
	b, err := os.ReadFile("/proc/1/cgroup")
	if err != nil {
		return false
	}
	s := string(b)
	for _, hint := range []string{"/docker/", "/docker-", "/kubepods", "/lxc/", "/libpod-", "containerd"} {
		if strings.Contains(s, hint) {
			return true
		}
	}
	return false
}

// rootMounts keeps the mounts on "/" (several when one covers another).
func rootMounts(m *mountinfo.Info) (skip, stop bool) { return m.Mountpoint != "/", false }

// containerRootMount reports whether the mount table has a root mount
// that a container runtime made: a bind mount of a directory (its root
// field is not "/"; on btrfs a single-component root is the host's own
// subvolume, such as /@), or an overlay whose layers live in a container
// store. The last root mount in the table is the one in effect.
func containerRootMount(ms []*mountinfo.Info) bool {
	var root *mountinfo.Info
	for _, m := range ms {
		if m.Mountpoint == "/" {
			root = m
		}
	}
	switch {
	case root == nil:
		return false
	case root.FSType == "overlay":
		rest := root.Source + " " + root.VFSOptions
		for _, hint := range []string{"/docker/", "/containers/storage/", "containerd", "/kiln/", "/buildkit/"} {
			if strings.Contains(rest, hint) {
				return true
			}
		}
		return false
	case root.FSType == "btrfs":
		return strings.Count(strings.Trim(root.Root, "/"), "/") > 0
	}
	return root.Root != "/"
}

// Network selects the network namespace of the process.
type Network int

const (
	// NetworkHost shares the host's network namespace.
	NetworkHost Network = iota
	// NetworkNone gives the process a new network namespace with only a
	// loopback interface.
	NetworkNone
	// NetworkPrivate gives the process its own network namespace; kiln sets
	// up only the loopback interface in it.
	NetworkPrivate
)

// ParseNetwork parses "host", "none" or "private" ("" means host;
// "container", Buildah's other name for a namespace of the container's
// own, is private). Anything else Buildah would look up as a named
// network, which kiln has none of; the error says so in Buildah's words.
func ParseNetwork(s string) (Network, error) {
	switch strings.ToLower(s) {
	case "", "host":
		return NetworkHost, nil
	case "none":
		return NetworkNone, nil
	case "private", "container":
		return NetworkPrivate, nil
	}
	return 0, fmt.Errorf("unable to find network with name or ID %s: network not found (kiln's networks: host, none, private)", s)
}

// String returns "host", "none" or "private".
func (n Network) String() string {
	switch n {
	case NetworkNone:
		return "none"
	case NetworkPrivate:
		return "private"
	}
	return "host"
}

// Options describes one process to run. Run does not modify it.
type Options struct {
	// ContainerID names the run; the OCI container is named after it plus a
	// random suffix, so concurrent runs in one container do not clash.
	ContainerID string
	// Rootfs is the mounted root filesystem; the caller mounts and unmounts it.
	Rootfs string
	// RunDir is a scratch directory owned by the caller; Run removes what it
	// creates there. Reusing it across runs lets Run clean up after a run
	// whose kiln process was killed.
	RunDir string
	// Args is the command line, already resolved (no shell form).
	Args []string
	// Env is the environment as K=V. PATH and HOME get defaults when absent.
	Env []string
	// User is "", "name", "uid", "name:group" or "uid:gid", resolved
	// against the root filesystem's /etc/passwd and /etc/group.
	User string
	// WorkingDir is created when missing; "" means "/".
	WorkingDir string
	// Hostname defaults to the first 12 characters of ContainerID.
	Hostname string
	// ContainerEnv, when set, is bound into the run as /run/.containerenv
	// (`kiln run`: the engine, container and image, as Buildah writes
	// it); the file a missing target needed goes after the run.
	ContainerEnv string
	// PrimaryGroupInGroups puts the user's group among its supplementary
	// groups too, as Buildah's run does (`kiln run --user 1000:1000`
	// shows "Groups: 1000"); Docker's RUN does not.
	PrimaryGroupInGroups bool
	// HostAliases are more names the hostname's line of the generated
	// /etc/hosts gives the container (`kiln run`: the working container's
	// name, as Buildah's /etc/hosts has it).
	HostAliases []string
	// Network selects the network namespace.
	Network Network
	// Mounts are extra mounts (bind and tmpfs), see ParseVolume and ParseMount.
	Mounts []specs.Mount
	// KeepMountTargets names mount destinations whose directories, and
	// the parents made for them, stay in the root filesystem after the
	// run, as docker build leaves RUN --mount targets in the image; a file
	// made for one of them is removed, its parents stay. Whatever else the
	// run made for its mounts and is still empty is removed.
	KeepMountTargets []string
	// CapAdd and CapDrop change the default capability set; names are
	// "CAP_X" or "X", or "ALL".
	CapAdd, CapDrop []string
	// Security is the seccomp profile, no_new_privs and the masked paths
	// (see ParseSecurityOpts); the zero value is the default policy.
	Security Security
	// Terminal gives the process a new pty as its controlling terminal
	// (OCI: runc allocates it; chroot: kiln does, the same way), as
	// Buildah's run --terminal does whether or not kiln has a terminal:
	// a terminal on Stdin is put in raw mode during the run; other input
	// is copied to the pty and its end passed on as end-of-file (^D).
	Terminal bool
	// Stdin, Stdout and Stderr are the process's standard streams; nil
	// means /dev/null.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// RuntimeLog receives the OCI runtime's own log when it was asked for
	// (--runtime-flag debug); Stderr when nil.
	RuntimeLog io.Writer
	// Isolation selects the OCI runtime or the built-in chroot isolation.
	Isolation Isolation
	// Runtime is the OCI runtime's path or name; "" means "runc".
	Runtime string
	// NoPivot uses MS_MOVE and chroot instead of pivot_root.
	NoPivot bool
	// Settings are the shared namespaces, resource limits, DNS and hosts
	// entries, devices, hooks and runtime flags (see Settings).
	Settings Settings
	// Logger receives warnings (a runtime fallback); nil discards them.
	Logger *slog.Logger
	// Architecture is the architecture of the root filesystem's binaries
	// (the image config's; "" is this machine's). A foreign one needs an
	// emulator registered with binfmt_misc: without, Run fails with
	// ErrNoEmulator before anything starts.
	Architecture string
}
