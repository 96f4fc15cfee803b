package run

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ErrBadSecurityOpt means a --security-opt value is invalid or not
// supported, or its seccomp profile cannot be used.
var ErrBadSecurityOpt = errors.New("bad security option")

// Security is the security policy of a process beyond capabilities: what
// Buildah's --security-opt sets. The zero value is the default policy:
// DefaultSeccompProfile, the OCI default masked and read-only paths, and
// no_new_privs not set.
type Security struct {
	// SeccompProfile replaces the default seccomp profile (seccomp=FILE);
	// SeccompFile names the file it came from.
	SeccompProfile *SeccompProfile
	SeccompFile    string
	// SeccompUnconfined runs the process without a seccomp filter
	// (seccomp=unconfined); it overrides SeccompProfile.
	SeccompUnconfined bool
	// NoNewPrivileges sets no_new_privs: set-user-ID programs and file
	// capabilities no longer raise privileges.
	NoNewPrivileges bool
	// Mask adds paths to hide; Unmask removes paths (or shell patterns)
	// from the default masked and read-only paths, "ALL" all of them
	// (paths in Mask stay masked).
	Mask, Unmask []string
}

// ParseSecurityOpts parses --security-opt values in order (a later
// seccomp= replaces an earlier one): seccomp=unconfined, seccomp=FILE (a
// Docker/OCI JSON profile, read now; a relative name is taken from the
// current directory), no-new-privileges[=true|false], mask=P1:P2,
// unmask=ALL|P1:P2, and the no-ops kiln honours by doing nothing:
// apparmor=unconfined (kiln applies no AppArmor profile) and label=disable
// (kiln labels nothing). Anything else is refused with ErrBadSecurityOpt
// naming the option.
func ParseSecurityOpts(opts []string) (Security, error) {
	var s Security
	for _, opt := range opts {
		if err := s.parse(opt); err != nil {
			return Security{}, err
		}
	}
	return s, nil
}

func (s *Security) parse(opt string) error {
	key, val, hasVal := strings.Cut(opt, "=")
	switch {
	case key == "no-new-privileges":
		if !hasVal {
			s.NoNewPrivileges = true
			return nil
		}
		b, err := strconv.ParseBool(val)
		if err != nil {
			return fmt.Errorf("%w %q: want no-new-privileges[=true|false]", ErrBadSecurityOpt, opt)
		}
		s.NoNewPrivileges = b
		return nil
	case !hasVal:
		return fmt.Errorf("%w %q: want NAME=VALUE", ErrBadSecurityOpt, opt)
	case key == "seccomp":
		return s.parseSeccomp(val)
	case key == "mask":
		paths, err := securityPaths(opt, val)
		s.Mask = append(s.Mask, paths...)
		return err
	case key == "unmask":
		if strings.EqualFold(val, "ALL") {
			s.Unmask = append(s.Unmask, "ALL")
			return nil
		}
		paths, err := securityPaths(opt, val)
		s.Unmask = append(s.Unmask, paths...)
		return err
	case key == "apparmor" && val == "unconfined", key == "label" && val == "disable":
		return nil
	case key == "apparmor":
		return fmt.Errorf("%w %q: kiln applies no AppArmor profiles (only apparmor=unconfined)", ErrBadSecurityOpt, opt)
	case key == "label":
		return fmt.Errorf("%w %q: kiln does no SELinux labelling (only label=disable)", ErrBadSecurityOpt, opt)
	}
	return fmt.Errorf("%w %q: unknown option (want seccomp=, no-new-privileges, mask=, unmask=, apparmor=unconfined or label=disable)", ErrBadSecurityOpt, opt)
}

func (s *Security) parseSeccomp(val string) error {
	switch val {
	case "":
		return fmt.Errorf("%w \"seccomp=\": want seccomp=unconfined or seccomp=FILE", ErrBadSecurityOpt)
	case "unconfined":
		s.SeccompProfile, s.SeccompFile, s.SeccompUnconfined = nil, "", true
		return nil
	}
	file, err := filepath.Abs(val)
	if err != nil {
		return fmt.Errorf("%w: seccomp profile %s: %w", ErrBadSecurityOpt, val, err)
	}
	p, err := LoadSeccompProfile(file)
	if err != nil {
		return err
	}
	s.SeccompProfile, s.SeccompFile, s.SeccompUnconfined = p, file, false
	return nil
}

// securityPaths splits a colon-separated list of absolute paths.
func securityPaths(opt, val string) ([]string, error) {
	var out []string
	for p := range strings.SplitSeq(val, ":") {
		if !path.IsAbs(p) {
			return nil, fmt.Errorf("%w %q: %q is not an absolute path", ErrBadSecurityOpt, opt, p)
		}
		out = append(out, path.Clean(p))
	}
	return out, nil
}

// Options returns the --security-opt values that give s again, with the
// profile named by its absolute path: what to record for later runs.
func (s Security) Options() []string {
	var out []string
	switch {
	case s.SeccompUnconfined:
		out = append(out, "seccomp=unconfined")
	case s.SeccompFile != "":
		out = append(out, "seccomp="+s.SeccompFile)
	}
	if s.NoNewPrivileges {
		out = append(out, "no-new-privileges")
	}
	if len(s.Mask) > 0 {
		out = append(out, "mask="+strings.Join(s.Mask, ":"))
	}
	for _, u := range s.Unmask {
		out = append(out, "unmask="+u)
	}
	return out
}

// seccomp resolves the policy's profile for a process holding caps; nil
// means no filter.
func (s Security) seccomp(caps []string) *specs.LinuxSeccomp {
	if s.SeccompUnconfined {
		return nil
	}
	p := s.SeccompProfile
	if p == nil {
		p = DefaultSeccompProfile()
	}
	return p.resolve(currentSeccompHost(caps))
}

// paths returns the masked and read-only paths after Mask and Unmask.
func (s Security) paths() (masked, readonly []string) {
	if slices.Contains(s.Unmask, "ALL") {
		return slices.Clone(s.Mask), nil
	}
	keep := func(p string) bool {
		for _, u := range s.Unmask {
			if ok, _ := path.Match(u, p); ok {
				return false
			}
		}
		return true
	}
	for _, p := range append(slices.Clone(maskedPaths), s.Mask...) {
		if keep(p) && !slices.Contains(masked, p) {
			masked = append(masked, p)
		}
	}
	for _, p := range readonlyPaths {
		if keep(p) {
			readonly = append(readonly, p)
		}
	}
	return masked, readonly
}

// prepareSecurity resolves the seccomp profile for the process's
// capabilities (and, for the chroot isolation, compiles it now, so that a
// profile it cannot apply fails before anything starts) and the masked
// and read-only paths.
func (p *plan) prepareSecurity() error {
	sec := p.o.Security
	p.masked, p.readonly = sec.paths()
	p.seccomp = sec.seccomp(p.caps)
	if p.seccomp == nil || p.o.Isolation != IsolationChroot {
		return nil
	}
	prog, err := compileSeccomp(p.seccomp)
	if err != nil {
		name := "the default seccomp profile"
		if sec.SeccompFile != "" {
			name = "seccomp profile " + sec.SeccompFile
		}
		return fmt.Errorf("%w: %s: %w", ErrBadSecurityOpt, name, err)
	}
	p.seccompProg = prog
	return nil
}
