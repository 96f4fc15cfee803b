package run

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The chroot isolation compiles a resolved profile to classic BPF itself
// (no libseccomp), with runc's semantics:
//
//   - Calls of another architecture (i386, and x32 on x86_64) fail with
//     ENOSYS: only the native call table is known here.
//   - A rule whose action is the default action is skipped.
//   - For one call, the first rule without arguments decides; otherwise
//     the rules with arguments are tried in profile order and the first
//     whose conditions all hold decides (conditions on one argument index
//     given twice in a rule are alternatives, each its own rule, as runc
//     makes them); otherwise the default action applies.
//   - Unless the default action allows, calls numbered above every call
//     the profile names fail with ENOSYS, as runc does, so that libc falls
//     back from calls newer than the profile.
//
// Arguments are compared as 64-bit values, as libseccomp does.

// ErrSeccompUnsupported means the chroot isolation cannot apply a profile
// (a user-notification action, an unknown flag, or no call table for this
// architecture when the profile is not unconfined).
var ErrSeccompUnsupported = errors.New("seccomp profile not supported by the chroot isolation")

// seccompData offsets (struct seccomp_data, little-endian).
const (
	seccompNrOff   = 0
	seccompArchOff = 4
	seccompArgOff  = 16
	bpfMaxInsns    = 4096
)

// seccompRet turns an action and its errno into a SECCOMP_RET_* value.
func seccompRet(act specs.LinuxSeccompAction, errnoRet *uint) (uint32, error) {
	data := uint32(unix.EPERM)
	if errnoRet != nil {
		data = uint32(*errnoRet) & unix.SECCOMP_RET_DATA
	}
	switch act {
	case specs.ActAllow:
		return unix.SECCOMP_RET_ALLOW, nil
	case specs.ActErrno:
		return unix.SECCOMP_RET_ERRNO | data, nil
	case specs.ActKill, specs.ActKillThread:
		return unix.SECCOMP_RET_KILL_THREAD, nil
	case specs.ActKillProcess:
		return unix.SECCOMP_RET_KILL_PROCESS, nil
	case specs.ActTrap:
		return unix.SECCOMP_RET_TRAP, nil
	case specs.ActTrace:
		return unix.SECCOMP_RET_TRACE | data, nil
	case specs.ActLog:
		return unix.SECCOMP_RET_LOG, nil
	case specs.ActNotify:
		return 0, fmt.Errorf("%w: action %s needs a seccomp agent", ErrSeccompUnsupported, act)
	}
	return 0, fmt.Errorf("unknown seccomp action %q", act)
}

// seccompFilterFlags turns the profile's flags into seccomp(2) flags.
func seccompFilterFlags(flags []specs.LinuxSeccompFlag) (uint, error) {
	var out uint
	for _, f := range flags {
		switch f {
		case specs.LinuxSeccompFlagLog:
			out |= unix.SECCOMP_FILTER_FLAG_LOG
		case specs.LinuxSeccompFlagSpecAllow:
			out |= unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW
		default:
			return 0, fmt.Errorf("%w: flag %s", ErrSeccompUnsupported, f)
		}
	}
	return out, nil
}

// seccompProgram is a compiled filter and the seccomp(2) flags to load it
// with.
type seccompProgram struct {
	Filter []unix.SockFilter
	Flags  uint
}

// compileSeccomp compiles sc for the native architecture.
func compileSeccomp(sc *specs.LinuxSeccomp) (*seccompProgram, error) {
	if seccompAuditArch == 0 {
		return nil, fmt.Errorf("%w: no call table for this architecture (use seccomp=unconfined)", ErrSeccompUnsupported)
	}
	if sc.ListenerPath != "" {
		return nil, fmt.Errorf("%w: listenerPath", ErrSeccompUnsupported)
	}
	flags, err := seccompFilterFlags(sc.Flags)
	if err != nil {
		return nil, err
	}
	c, err := newSeccompCompiler(sc)
	if err != nil {
		return nil, err
	}
	prog, err := c.program()
	if err != nil {
		return nil, err
	}
	return &seccompProgram{Filter: prog, Flags: flags}, nil
}

// seccompCall is one call's rules after skipping those that repeat the
// default action.
type seccompCall struct {
	uncond   *uint32 // the first rule without arguments
	rules    []seccompCondRule
	hasRules bool
}

type seccompCondRule struct {
	ret  uint32
	args []specs.LinuxSeccompArg
}

type seccompCompiler struct {
	def     uint32
	enosys  bool // calls above maxNr fail with ENOSYS
	maxNr   int64
	calls   map[uint32]*seccompCall
	asm     *bpfAsm
	nosys   uint32
	handled map[uint32]bpfLabel // block label per call with conditional rules
}

func newSeccompCompiler(sc *specs.LinuxSeccomp) (*seccompCompiler, error) {
	def, err := seccompRet(sc.DefaultAction, sc.DefaultErrnoRet)
	if err != nil {
		return nil, err
	}
	c := &seccompCompiler{
		def: def, maxNr: -1, calls: map[uint32]*seccompCall{},
		asm: &bpfAsm{labels: new(int)}, nosys: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS),
		handled: map[uint32]bpfLabel{},
	}
	permissive := sc.DefaultAction == specs.ActAllow || sc.DefaultAction == specs.ActLog
	c.enosys = !permissive && def != c.nosys
	for _, s := range sc.Syscalls {
		ret, err := seccompRet(s.Action, s.ErrnoRet)
		if err != nil {
			return nil, fmt.Errorf("syscalls %s: %w", strings.Join(s.Names, ","), err)
		}
		for _, name := range s.Names {
			nr, ok := syscallNumbers[name]
			if !ok {
				continue // not a call of this architecture
			}
			c.maxNr = max(c.maxNr, int64(nr))
			if ret == def {
				continue
			}
			call := c.calls[nr]
			if call == nil {
				call = &seccompCall{}
				c.calls[nr] = call
			}
			if len(s.Args) == 0 {
				if call.uncond == nil {
					call.uncond = &ret
				}
				continue
			}
			for _, args := range splitSeccompArgs(s.Args) {
				call.rules = append(call.rules, seccompCondRule{ret: ret, args: args})
			}
		}
	}
	return c, nil
}

// splitSeccompArgs returns the argument conditions of one rule as the
// rules runc adds: all together, or each alone when an index repeats.
func splitSeccompArgs(args []specs.LinuxSeccompArg) [][]specs.LinuxSeccompArg {
	seen := map[uint]bool{}
	for _, a := range args {
		if seen[a.Index] {
			out := make([][]specs.LinuxSeccompArg, len(args))
			for i, a := range args {
				out[i] = []specs.LinuxSeccompArg{a}
			}
			return out
		}
		seen[a.Index] = true
	}
	return [][]specs.LinuxSeccompArg{args}
}

// seccompRange is a run of call numbers with one outcome: a return value,
// or (block != 0) the argument checks of one call.
type seccompRange struct {
	lo    uint32
	ret   uint32
	block bpfLabel
}

func (c *seccompCompiler) program() ([]unix.SockFilter, error) {
	a := c.asm
	native := a.label()
	a.stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, seccompArchOff)
	a.jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, seccompAuditArch, native, 0)
	a.ret(c.nosys)
	a.mark(native)
	a.stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, seccompNrOff)
	if seccompX32Bit != 0 {
		notX32 := a.label()
		a.jump(unix.BPF_JMP|unix.BPF_JSET|unix.BPF_K, seccompX32Bit, 0, notX32)
		a.ret(c.nosys)
		a.mark(notX32)
	}
	ranges := c.ranges()
	a.code = append(a.code, c.tree(ranges).code...)
	for _, nr := range slices.Sorted(maps.Keys(c.handled)) {
		c.block(nr)
	}
	return a.assemble()
}

// ranges splits the call numbers into runs with one outcome each.
func (c *seccompCompiler) ranges() []seccompRange {
	var out []seccompRange
	add := func(nr uint32, r seccompRange) {
		r.lo = nr
		if n := len(out); n > 0 && r.block == 0 && out[n-1].block == 0 && out[n-1].ret == r.ret {
			return
		}
		out = append(out, r)
	}
	for nr := uint32(0); int64(nr) <= c.maxNr; nr++ {
		call := c.calls[nr]
		switch {
		case call == nil || call.uncond == nil && len(call.rules) == 0:
			add(nr, seccompRange{ret: c.def})
		case call.uncond != nil:
			add(nr, seccompRange{ret: *call.uncond})
		default:
			l := c.asm.label()
			c.handled[nr] = l
			add(nr, seccompRange{block: l})
		}
	}
	above := c.def
	if c.enosys {
		above = c.nosys
	}
	add(uint32(c.maxNr+1), seccompRange{ret: above})
	return out
}

// tree emits a binary search over ranges (sorted by lo) on the call
// number in the accumulator.
func (c *seccompCompiler) tree(ranges []seccompRange) *bpfAsm {
	a := c.asm.fragment()
	if len(ranges) == 1 {
		r := ranges[0]
		if r.block != 0 {
			a.ja(r.block)
		} else {
			a.ret(r.ret)
		}
		return a
	}
	mid := len(ranges) / 2
	left, right := c.tree(ranges[:mid]), c.tree(ranges[mid:])
	toRight := a.label()
	jge := uint16(unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K)
	if left.size() <= 255 {
		a.jump(jge, ranges[mid].lo, toRight, 0)
	} else {
		toLeft := a.label()
		a.jump(jge, ranges[mid].lo, 0, toLeft)
		a.ja(toRight)
		a.mark(toLeft)
	}
	a.code = append(a.code, left.code...)
	a.mark(toRight)
	a.code = append(a.code, right.code...)
	return a
}

// block emits the argument checks of call nr.
func (c *seccompCompiler) block(nr uint32) {
	a := c.asm
	a.mark(c.handled[nr])
	for _, r := range c.calls[nr].rules {
		next := a.label()
		for _, arg := range r.args {
			c.condition(arg, next)
		}
		a.ret(r.ret)
		a.mark(next)
	}
	a.ret(c.def)
}

// condition emits a 64-bit comparison of one argument that falls through
// when it holds and jumps to fail otherwise.
func (c *seccompCompiler) condition(arg specs.LinuxSeccompArg, fail bpfLabel) {
	a := c.asm
	const (
		ld  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jgt = unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K
		jge = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
		and = unix.BPF_ALU | unix.BPF_AND | unix.BPF_K
	)
	lo, hi := uint32(seccompArgOff+8*arg.Index), uint32(seccompArgOff+8*arg.Index+4)
	v, v2 := arg.Value, arg.ValueTwo
	vhi, vlo := uint32(v>>32), uint32(v)
	pass := a.label()
	switch arg.Op {
	case specs.OpEqualTo:
		a.stmt(ld, hi)
		a.jump(jeq, vhi, 0, fail)
		a.stmt(ld, lo)
		a.jump(jeq, vlo, 0, fail)
	case specs.OpNotEqual:
		a.stmt(ld, hi)
		a.jump(jeq, vhi, 0, pass)
		a.stmt(ld, lo)
		a.jump(jeq, vlo, fail, 0)
	case specs.OpMaskedEqual: // (arg & Value) == ValueTwo
		a.stmt(ld, hi)
		a.stmt(and, vhi)
		a.jump(jeq, uint32(v2>>32), 0, fail)
		a.stmt(ld, lo)
		a.stmt(and, vlo)
		a.jump(jeq, uint32(v2), 0, fail)
	case specs.OpGreaterThan, specs.OpGreaterEqual:
		a.stmt(ld, hi)
		a.jump(jgt, vhi, pass, 0)
		a.jump(jeq, vhi, 0, fail)
		a.stmt(ld, lo)
		if arg.Op == specs.OpGreaterThan {
			a.jump(jgt, vlo, 0, fail)
		} else {
			a.jump(jge, vlo, 0, fail)
		}
	case specs.OpLessThan, specs.OpLessEqual:
		a.stmt(ld, hi)
		a.jump(jge, vhi, 0, pass)
		a.jump(jgt, vhi, fail, 0)
		a.stmt(ld, lo)
		if arg.Op == specs.OpLessThan {
			a.jump(jge, vlo, fail, 0)
		} else {
			a.jump(jgt, vlo, fail, 0)
		}
	}
	a.mark(pass)
}

// bpfLabel names a position in a program; 0 means the next instruction.
type bpfLabel int

// bpfInsn is an instruction with symbolic jump targets, or (def != 0) the
// definition of a label, which takes no space.
type bpfInsn struct {
	f      unix.SockFilter
	jt, jf bpfLabel // conditional jumps
	ja     bpfLabel // BPF_JA
	def    bpfLabel
}

// bpfAsm assembles a classic BPF program with labels. Fragments share
// the label counter and are spliced into their parent's code.
type bpfAsm struct {
	code   []bpfInsn
	labels *int
}

func (a *bpfAsm) fragment() *bpfAsm { return &bpfAsm{labels: a.labels} }

func (a *bpfAsm) label() bpfLabel { *a.labels++; return bpfLabel(*a.labels) }

func (a *bpfAsm) mark(l bpfLabel) { a.code = append(a.code, bpfInsn{def: l}) }

func (a *bpfAsm) stmt(code uint16, k uint32) {
	a.code = append(a.code, bpfInsn{f: unix.SockFilter{Code: code, K: k}})
}

func (a *bpfAsm) jump(code uint16, k uint32, jt, jf bpfLabel) {
	a.code = append(a.code, bpfInsn{f: unix.SockFilter{Code: code, K: k}, jt: jt, jf: jf})
}

func (a *bpfAsm) ja(l bpfLabel) {
	a.code = append(a.code, bpfInsn{f: unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JA}, ja: l})
}

func (a *bpfAsm) ret(k uint32) { a.stmt(unix.BPF_RET|unix.BPF_K, k) }

// size counts real instructions.
func (a *bpfAsm) size() int {
	n := 0
	for _, in := range a.code {
		if in.def == 0 {
			n++
		}
	}
	return n
}

// assemble resolves the labels; a conditional jump must reach its target
// within 255 instructions.
func (a *bpfAsm) assemble() ([]unix.SockFilter, error) {
	pos := map[bpfLabel]int{}
	n := 0
	for _, in := range a.code {
		if in.def != 0 {
			pos[in.def] = n
			continue
		}
		n++
	}
	if n > bpfMaxInsns {
		return nil, fmt.Errorf("seccomp filter has %d instructions, more than the kernel's %d", n, bpfMaxInsns)
	}
	out := make([]unix.SockFilter, 0, n)
	for _, in := range a.code {
		if in.def != 0 {
			continue
		}
		i := len(out)
		f := in.f
		offset := func(l bpfLabel) (int, error) {
			if l == 0 {
				return 0, nil
			}
			p, ok := pos[l]
			if !ok || p <= i {
				return 0, fmt.Errorf("seccomp filter: bad jump at %d", i)
			}
			return p - i - 1, nil
		}
		if in.ja != 0 {
			off, err := offset(in.ja)
			if err != nil {
				return nil, err
			}
			f.K = uint32(off)
		} else if f.Code&0x07 == unix.BPF_JMP {
			jt, err := offset(in.jt)
			if err != nil {
				return nil, err
			}
			jf, err := offset(in.jf)
			if err != nil {
				return nil, err
			}
			if jt > 255 || jf > 255 {
				return nil, fmt.Errorf("seccomp filter: jump too long at %d", i)
			}
			f.Jt, f.Jf = uint8(jt), uint8(jf)
		}
		out = append(out, f)
	}
	return out, nil
}

// installSeccomp loads the filter on the calling thread only; processes
// the thread forks inherit it. The thread must hold CAP_SYS_ADMIN or have
// no_new_privs set.
func installSeccomp(p *seccompProgram) error {
	if p == nil || len(p.Filter) == 0 {
		return nil
	}
	fprog := unix.SockFprog{Len: uint16(len(p.Filter)), Filter: &p.Filter[0]}
	var err error
	if p.Flags == 0 {
		err = unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&fprog)), 0, 0)
	} else {
		_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(p.Flags), uintptr(unsafe.Pointer(&fprog)))
		if errno != 0 {
			err = errno
		}
	}
	if err != nil {
		return fmt.Errorf("loading the seccomp filter: %w", err)
	}
	return nil
}
