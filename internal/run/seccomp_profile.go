package run

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// SeccompProfile is a seccomp profile in the JSON format Docker, Podman,
// Buildah and runc read: the runtime-spec's linux.seccomp plus rules that
// apply only for some capabilities, architectures or kernels, and an
// archMap that lists the architectures per native architecture. A profile
// with neither a default action nor rules means no filter, as in Docker.
type SeccompProfile struct {
	DefaultAction    specs.LinuxSeccompAction `json:"defaultAction"`
	DefaultErrnoRet  *uint                    `json:"defaultErrnoRet,omitempty"`
	Architectures    []specs.Arch             `json:"architectures,omitempty"`
	ArchMap          []SeccompArchMap         `json:"archMap,omitempty"`
	Flags            []specs.LinuxSeccompFlag `json:"flags,omitempty"`
	ListenerPath     string                   `json:"listenerPath,omitempty"`
	ListenerMetadata string                   `json:"listenerMetadata,omitempty"`
	Syscalls         []SeccompRule            `json:"syscalls,omitempty"`
}

// SeccompArchMap lists, for one native architecture, the others whose
// calls the filter also covers (x86 and x32 on x86_64).
type SeccompArchMap struct {
	Arch      specs.Arch   `json:"architecture"`
	SubArches []specs.Arch `json:"subArchitectures"`
}

// SeccompRule gives the calls it names one action, optionally only when
// their arguments match (all of Args), and only when Includes holds and
// Excludes does not.
type SeccompRule struct {
	Name     string                   `json:"name,omitempty"` // the older one-name form
	Names    []string                 `json:"names,omitempty"`
	Action   specs.LinuxSeccompAction `json:"action"`
	ErrnoRet *uint                    `json:"errnoRet,omitempty"`
	Args     []specs.LinuxSeccompArg  `json:"args,omitempty"`
	Comment  string                   `json:"comment,omitempty"`
	Includes *SeccompCondition        `json:"includes,omitempty"`
	Excludes *SeccompCondition        `json:"excludes,omitempty"`
}

// SeccompCondition selects where a rule applies: Includes holds when the
// process has every capability in Caps, the native architecture (Go's
// name, such as "amd64") is in Arches and the kernel is at least
// MinKernel; Excludes holds when any one of them holds.
type SeccompCondition struct {
	Caps      []string `json:"caps,omitempty"`
	Arches    []string `json:"arches,omitempty"`
	MinKernel string   `json:"minKernel,omitempty"` // "MAJOR.MINOR"
}

// LoadSeccompProfile reads and checks a profile file; its errors wrap
// ErrBadSecurityOpt and name the file.
func LoadSeccompProfile(file string) (*SeccompProfile, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: reading seccomp profile: %w", ErrBadSecurityOpt, err)
	}
	p, err := ParseSeccompProfile(b)
	if err != nil {
		return nil, fmt.Errorf("%w: seccomp profile %s: %w", ErrBadSecurityOpt, file, err)
	}
	return p, nil
}

// ParseSeccompProfile decodes and checks a profile: actions, operators,
// architectures, argument indexes and kernel versions must be known.
// Unknown call names are kept; the filter skips those the architecture
// lacks, as runc does.
func ParseSeccompProfile(b []byte) (*SeccompProfile, error) {
	var p SeccompProfile
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("decoding JSON: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("decoding JSON: data after the profile")
	}
	return &p, p.check()
}

var (
	seccompActions = []specs.LinuxSeccompAction{
		specs.ActKill, specs.ActKillProcess, specs.ActKillThread, specs.ActTrap,
		specs.ActErrno, specs.ActTrace, specs.ActAllow, specs.ActLog, specs.ActNotify,
	}
	seccompOps = []specs.LinuxSeccompOperator{
		specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
		specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual,
	}
	seccompArchNames = []specs.Arch{
		specs.ArchX86, specs.ArchX86_64, specs.ArchX32, specs.ArchARM, specs.ArchAARCH64,
		specs.ArchMIPS, specs.ArchMIPS64, specs.ArchMIPS64N32, specs.ArchMIPSEL,
		specs.ArchMIPSEL64, specs.ArchMIPSEL64N32, specs.ArchPPC, specs.ArchPPC64,
		specs.ArchPPC64LE, specs.ArchS390, specs.ArchS390X, specs.ArchPARISC,
		specs.ArchPARISC64, specs.ArchRISCV64, specs.ArchLOONGARCH64,
	}
)

// Unconfined reports whether the profile means no filter at all.
func (p *SeccompProfile) Unconfined() bool {
	return p.DefaultAction == "" && len(p.Syscalls) == 0
}

func (p *SeccompProfile) check() error {
	if p.Unconfined() {
		return nil
	}
	if !slices.Contains(seccompActions, p.DefaultAction) {
		return fmt.Errorf("unknown default action %q", p.DefaultAction)
	}
	if len(p.Architectures) > 0 && len(p.ArchMap) > 0 {
		return fmt.Errorf("both architectures and archMap are given: use one")
	}
	for _, a := range p.Architectures {
		if !slices.Contains(seccompArchNames, a) {
			return fmt.Errorf("unknown architecture %q", a)
		}
	}
	for _, m := range p.ArchMap {
		for _, a := range append([]specs.Arch{m.Arch}, m.SubArches...) {
			if !slices.Contains(seccompArchNames, a) {
				return fmt.Errorf("archMap: unknown architecture %q", a)
			}
		}
	}
	for i, r := range p.Syscalls {
		if err := r.check(); err != nil {
			return fmt.Errorf("syscalls[%d]: %w", i, err)
		}
	}
	return nil
}

func (r *SeccompRule) check() error {
	if r.Name != "" && len(r.Names) > 0 {
		return fmt.Errorf("both name and names are given: use one")
	}
	if r.Name == "" && len(r.Names) == 0 {
		return fmt.Errorf("no syscall names")
	}
	if !slices.Contains(seccompActions, r.Action) {
		return fmt.Errorf("unknown action %q", r.Action)
	}
	if r.ErrnoRet != nil && *r.ErrnoRet > 0xffff {
		return fmt.Errorf("errnoRet %d is out of range", *r.ErrnoRet)
	}
	for _, a := range r.Args {
		if a.Index > 5 {
			return fmt.Errorf("argument index %d: calls have 6 arguments", a.Index)
		}
		if !slices.Contains(seccompOps, a.Op) {
			return fmt.Errorf("unknown operator %q", a.Op)
		}
	}
	for _, c := range []*SeccompCondition{r.Includes, r.Excludes} {
		if c == nil || c.MinKernel == "" {
			continue
		}
		if _, err := parseKernelVersion(c.MinKernel); err != nil {
			return err
		}
	}
	return nil
}

// names returns the rule's call names in either form.
func (r *SeccompRule) names() []string {
	if r.Name != "" {
		return []string{r.Name}
	}
	return r.Names
}

// seccompHost is what a profile is resolved against.
type seccompHost struct {
	arch   string   // Go's name of the native architecture
	kernel [2]int   // major, minor
	caps   []string // the process's bounding set
}

func currentSeccompHost(caps []string) seccompHost {
	h := seccompHost{arch: runtime.GOARCH, caps: caps}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		h.kernel, _ = parseKernelVersion(unix.ByteSliceToString(u.Release[:]))
	}
	return h
}

// nativeSeccompArch maps Go's architecture names to libseccomp's.
var nativeSeccompArch = map[string]specs.Arch{
	"386": specs.ArchX86, "amd64": specs.ArchX86_64, "arm": specs.ArchARM,
	"arm64": specs.ArchAARCH64, "loong64": specs.ArchLOONGARCH64,
	"mips64": specs.ArchMIPS64, "mips64le": specs.ArchMIPSEL64, "mipsle": specs.ArchMIPSEL,
	"ppc64": specs.ArchPPC64, "ppc64le": specs.ArchPPC64LE, "riscv64": specs.ArchRISCV64,
	"s390x": specs.ArchS390X,
}

// resolve turns the profile into the runtime-spec form for a process on
// h: rules whose conditions do not hold are dropped, archMap becomes the
// native architecture and its sub-architectures. An unconfined profile
// resolves to nil. The rule semantics are Docker's (moby/profiles).
func (p *SeccompProfile) resolve(h seccompHost) *specs.LinuxSeccomp {
	if p.Unconfined() {
		return nil
	}
	sc := &specs.LinuxSeccomp{
		DefaultAction: p.DefaultAction, DefaultErrnoRet: p.DefaultErrnoRet,
		Architectures: slices.Clone(p.Architectures), Flags: slices.Clone(p.Flags),
		ListenerPath: p.ListenerPath, ListenerMetadata: p.ListenerMetadata,
	}
	for _, m := range p.ArchMap {
		if m.Arch == nativeSeccompArch[h.arch] {
			sc.Architectures = append(append(sc.Architectures, m.Arch), m.SubArches...)
		}
	}
	for _, r := range p.Syscalls {
		if !r.applies(h) {
			continue
		}
		sc.Syscalls = append(sc.Syscalls, specs.LinuxSyscall{
			Names: slices.Clone(r.names()), Action: r.Action, ErrnoRet: r.ErrnoRet, Args: slices.Clone(r.Args),
		})
	}
	return sc
}

func (r *SeccompRule) applies(h seccompHost) bool {
	if c := r.Excludes; c != nil {
		if slices.Contains(c.Arches, h.arch) {
			return false
		}
		for _, cp := range c.Caps {
			if slices.Contains(h.caps, cp) {
				return false
			}
		}
		if c.MinKernel != "" && kernelAtLeast(h.kernel, c.MinKernel) {
			return false
		}
	}
	if c := r.Includes; c != nil {
		if len(c.Arches) > 0 && !slices.Contains(c.Arches, h.arch) {
			return false
		}
		for _, cp := range c.Caps {
			if !slices.Contains(h.caps, cp) {
				return false
			}
		}
		if c.MinKernel != "" && !kernelAtLeast(h.kernel, c.MinKernel) {
			return false
		}
	}
	return true
}

// parseKernelVersion reads "MAJOR.MINOR" from a version or kernel
// release string such as "6.1.0-18-amd64".
func parseKernelVersion(s string) ([2]int, error) {
	var v [2]int
	parts := strings.SplitN(s, ".", 3)
	if len(parts) < 2 {
		return v, fmt.Errorf("bad kernel version %q: want MAJOR.MINOR", s)
	}
	for i := range 2 {
		digits := parts[i]
		if end := strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }); end >= 0 {
			digits = digits[:end]
		}
		n, err := strconv.Atoi(digits)
		if err != nil {
			return v, fmt.Errorf("bad kernel version %q: want MAJOR.MINOR", s)
		}
		v[i] = n
	}
	return v, nil
}

func kernelAtLeast(have [2]int, want string) bool {
	w, err := parseKernelVersion(want)
	if err != nil {
		return false
	}
	return have[0] > w[0] || have[0] == w[0] && have[1] >= w[1]
}
