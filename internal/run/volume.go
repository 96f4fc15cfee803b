package run

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ParseVolume parses a --volume/-v value in Buildah's and Docker's syntax,
// "HOST-DIR:CONTAINER-DIR[:OPTIONS]", into a recursive bind mount. OPTIONS
// is a comma list of ro, rw, z, Z, bind, rbind, nosuid, nodev, noexec,
// suid, dev, exec and the propagation modes; z and Z are accepted and
// ignored (no SELinux here). Named volumes are not supported.
func ParseVolume(spec string) (specs.Mount, error) {
	parts := strings.Split(spec, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return specs.Mount{}, fmt.Errorf("parsing volume %q: want HOST-DIR:CONTAINER-DIR[:OPTIONS]: %w", spec, ErrBadMount)
	}
	src, dst := parts[0], parts[1]
	if !filepath.IsAbs(src) {
		return specs.Mount{}, fmt.Errorf("parsing volume %q: host path %q is not absolute (named volumes are not supported): %w", spec, src, ErrBadMount)
	}
	if !filepath.IsAbs(dst) {
		return specs.Mount{}, fmt.Errorf("parsing volume %q: container path %q is not absolute: %w", spec, dst, ErrBadMount)
	}
	m := specs.Mount{Destination: filepath.Clean(dst), Type: "bind", Source: filepath.Clean(src)}
	bind, mode := "rbind", ""
	if len(parts) == 3 && parts[2] != "" {
		for opt := range strings.SplitSeq(parts[2], ",") {
			switch opt {
			case "ro", "rw":
				if mode != "" {
					return specs.Mount{}, fmt.Errorf("parsing volume %q: ro and rw given twice: %w", spec, ErrBadMount)
				}
				mode = opt
			case "z", "Z":
			case "bind", "rbind":
				bind = opt
			case "nosuid", "nodev", "noexec", "suid", "dev", "exec",
				"private", "rprivate", "shared", "rshared", "slave", "rslave":
				m.Options = append(m.Options, opt)
			default:
				return specs.Mount{}, fmt.Errorf("parsing volume %q: unsupported option %q: %w", spec, opt, ErrBadMount)
			}
		}
	}
	if mode == "" {
		mode = "rw"
	}
	m.Options = append([]string{bind, mode}, m.Options...)
	return m, nil
}

// ParseMount parses a --mount value in Docker's syntax: a comma list of
// key=value with type=bind (source, target, readonly/ro, bind-propagation,
// bind-nonrecursive) or type=tmpfs (target, tmpfs-size, tmpfs-mode, ro).
// "destination" and "dst" mean target, "src" means source.
func ParseMount(spec string) (specs.Mount, error) {
	kv := map[string]string{}
	var order []string
	for field := range strings.SplitSeq(spec, ",") {
		k, v, hasValue := strings.Cut(field, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		switch k {
		case "ro", "readonly", "rw":
			if !hasValue {
				v = "true"
			}
		case "":
			continue
		}
		if _, dup := kv[k]; dup {
			return specs.Mount{}, fmt.Errorf("parsing mount %q: %s given twice: %w", spec, k, ErrBadMount)
		}
		kv[k] = v
		order = append(order, k)
	}
	m, err := mountFromKeys(kv, order)
	if err != nil {
		return specs.Mount{}, fmt.Errorf("parsing mount %q: %w", spec, err)
	}
	return m, nil
}

func mountFromKeys(kv map[string]string, order []string) (specs.Mount, error) {
	typ := kv["type"]
	if typ == "" {
		typ = "bind"
	}
	var m specs.Mount
	readonly := false
	bind := "rbind"
	for _, k := range order {
		v := kv[k]
		switch k {
		case "type":
		case "target", "destination", "dst":
			m.Destination = v
		case "source", "src":
			m.Source = v
		case "ro", "readonly":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return m, fmt.Errorf("%s=%q is not a boolean: %w", k, v, ErrBadMount)
			}
			readonly = b
		case "rw":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return m, fmt.Errorf("rw=%q is not a boolean: %w", v, ErrBadMount)
			}
			readonly = !b
		case "bind-propagation":
			m.Options = append(m.Options, v)
		case "bind-nonrecursive":
			if b, _ := strconv.ParseBool(v); b {
				bind = "bind"
			}
		case "relabel", "z", "Z", "consistency":
		case "tmpfs-size":
			m.Options = append(m.Options, "size="+v)
		case "tmpfs-mode":
			if _, err := strconv.ParseUint(v, 8, 32); err != nil {
				return m, fmt.Errorf("tmpfs-mode=%q is not an octal mode: %w", v, ErrBadMount)
			}
			m.Options = append(m.Options, "mode="+v)
		default:
			return m, fmt.Errorf("unsupported key %q: %w", k, ErrBadMount)
		}
	}
	if m.Destination == "" || !filepath.IsAbs(m.Destination) {
		return m, fmt.Errorf("target %q is not an absolute path: %w", m.Destination, ErrBadMount)
	}
	m.Destination = filepath.Clean(m.Destination)
	mode := "rw"
	if readonly {
		mode = "ro"
	}
	switch typ {
	case "bind":
		if !filepath.IsAbs(m.Source) {
			return m, fmt.Errorf("bind source %q is not an absolute path: %w", m.Source, ErrBadMount)
		}
		m.Type, m.Source = "bind", filepath.Clean(m.Source)
		m.Options = append([]string{bind, mode}, m.Options...)
	case "tmpfs":
		if m.Source != "" {
			return m, fmt.Errorf("tmpfs takes no source: %w", ErrBadMount)
		}
		m.Type, m.Source = "tmpfs", "tmpfs"
		m.Options = append([]string{mode, "nosuid", "nodev"}, m.Options...)
	default:
		return m, fmt.Errorf("mount type %q is not supported by run (use bind or tmpfs): %w", typ, ErrBadMount)
	}
	return m, nil
}
