package run

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ParseVolume parses a --volume/-v value in Buildah's syntax,
// "HOST-DIR:CONTAINER-DIR[:OPTIONS]", into a recursive bind mount. OPTIONS
// is a comma list of ro, rw, z, Z, bind, rbind, nosuid, nodev, noexec,
// suid, dev, exec, the propagation modes, U and O; z and Z are accepted
// and ignored (no SELinux here). U (OptionChown) makes the run give the
// source to the process's user first. O makes it an overlay volume
// (Type "overlay", Source the host directory as its lower layer): the
// container may write, its writes go to a throwaway upper directory, or
// to the one "upperdir=DIR" names, with "workdir=DIR" (both or neither);
// see Options.Mounts. Named volumes are not supported.
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
	v := volumeOptions{bind: "rbind"}
	if len(parts) == 3 && parts[2] != "" {
		for opt := range strings.SplitSeq(parts[2], ",") {
			if err := v.add(opt); err != nil {
				return specs.Mount{}, fmt.Errorf("parsing volume %q: %w", spec, err)
			}
		}
	}
	if v.mode == "" {
		v.mode = "rw"
	}
	if v.overlay {
		if (v.upper == "") != (v.work == "") {
			return specs.Mount{}, fmt.Errorf("parsing volume %q: if specifying upperdir then workdir must be specified or vice versa: %w", spec, ErrBadMount)
		}
		m.Type = "overlay"
		if v.upper != "" {
			v.opts = append(v.opts, "upperdir="+v.upper, "workdir="+v.work)
		}
		if v.mode == "ro" {
			v.opts = append(v.opts, "ro")
		}
		m.Options = v.opts
		return m, nil
	}
	if v.upper != "" || v.work != "" {
		return specs.Mount{}, fmt.Errorf("parsing volume %q: upperdir and workdir need the O option: %w", spec, ErrBadMount)
	}
	m.Options = append([]string{v.bind, v.mode}, v.opts...)
	return m, nil
}

// OptionChown is the mount option (a volume's U) that has the run give
// the mount's source, recursively, to the user the process runs as
// before it starts; it is not passed to mount(2).
const OptionChown = "U"

// volumeOptions collects the options of one --volume.
type volumeOptions struct {
	bind, mode  string
	overlay     bool
	upper, work string
	opts        []string
}

func (v *volumeOptions) add(opt string) error {
	switch opt {
	case "ro", "rw":
		if v.mode != "" {
			return fmt.Errorf("ro and rw given twice: %w", ErrBadMount)
		}
		v.mode = opt
	case "z", "Z":
	case "O":
		v.overlay = true
	case OptionChown:
		if !slices.Contains(v.opts, opt) {
			v.opts = append(v.opts, opt)
		}
	case "bind", "rbind":
		v.bind = opt
	case "nosuid", "nodev", "noexec", "suid", "dev", "exec",
		"private", "rprivate", "shared", "rshared", "slave", "rslave":
		v.opts = append(v.opts, opt)
	default:
		k, dir, ok := strings.Cut(opt, "=")
		switch {
		case ok && (k == "upperdir" || k == "workdir") && filepath.IsAbs(dir):
			if k == "upperdir" {
				v.upper = filepath.Clean(dir)
			} else {
				v.work = filepath.Clean(dir)
			}
		case ok && (k == "upperdir" || k == "workdir"):
			return fmt.Errorf("%s %q is not an absolute path: %w", k, dir, ErrBadMount)
		default:
			return fmt.Errorf("unsupported option %q: %w", opt, ErrBadMount)
		}
	}
	return nil
}

// MountRequest is a parsed `kiln run --mount`: the mount, and for the
// two kinds whose source is in kiln's store, what the caller resolves
// before the run (container.ResolveMount).
type MountRequest struct {
	specs.Mount
	// From names a local image a bind's Source is a path in; "" means
	// Source is a host path.
	From string
	// Cache, for type=cache, says which cache directory to bind at
	// Destination; Source is "" until the caller sets it.
	Cache *CacheRequest
}

// CacheRequest is a cache mount's directory: ID (the target unless
// given), the new directory's Mode, UID and GID, and whether the run
// holds it alone (sharing=locked).
type CacheRequest struct {
	ID       string
	Mode     os.FileMode
	UID, GID int
	Locked   bool
}

// ParseMount parses a --mount value of `kiln run` in Buildah's syntax: a
// comma list of type=bind|tmpfs|cache (bind when absent), a target
// (target, destination, dst), and options, as keys with values or bare
// words. bind: source (src: a host path; a relative one is the
// caller's to resolve, Buildah's --contextdir), from=IMAGE (source is
// then a path in that image), ro/readonly or rw/readwrite (read-only unless rw is given, as
// in Buildah), bind-propagation and the bare propagation modes,
// bind-nonrecursive, nosuid, nodev, noexec, U. tmpfs: tmpfs-size,
// tmpfs-mode, ro. cache: id, mode, uid, gid, sharing=shared|private|locked,
// ro, U. z, Z, relabel and consistency are accepted and ignored.
func ParseMount(spec string) (MountRequest, error) {
	var mo mountOptions
	for field := range strings.SplitSeq(spec, ",") {
		if strings.TrimSpace(field) == "" {
			continue
		}
		if err := mo.add(field); err != nil {
			return MountRequest{}, fmt.Errorf("parsing mount %q: %w", spec, err)
		}
	}
	req, err := mo.request()
	if err != nil {
		return MountRequest{}, fmt.Errorf("parsing mount %q: %w", spec, err)
	}
	return req, nil
}

// mountOptions collects the fields of one --mount.
type mountOptions struct {
	typ, target, source, from string
	seen                      map[string]bool
	readonly                  *bool
	nonRecursive              bool
	opts                      []string // passed on: propagation, nosuid, ..., U
	tmpfs                     []string // size=, mode=
	cache                     CacheRequest
}

// mountFlags are the options that pass through to the mount as they are.
var mountFlags = []string{"nosuid", "nodev", "noexec", "private", "rprivate", "shared", "rshared", "slave", "rslave", OptionChown}

func (mo *mountOptions) add(field string) error {
	k, v, hasValue := strings.Cut(field, "=")
	k = strings.TrimSpace(k)
	if mo.seen == nil {
		mo.seen = map[string]bool{}
	}
	if mo.seen[k] {
		return fmt.Errorf("%s given twice: %w", k, ErrBadMount)
	}
	mo.seen[k] = true
	boolValue := func() (bool, error) {
		if !hasValue {
			return true, nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, fmt.Errorf("%s=%q is not a boolean: %w", k, v, ErrBadMount)
		}
		return b, nil
	}
	var err error
	switch k {
	case "type":
		mo.typ = v
	case "target", "destination", "dst":
		mo.target = v
	case "source", "src":
		mo.source = v
	case "from":
		mo.from = v
	case "ro", "readonly", "rw", "readwrite":
		if mo.readonly != nil {
			return fmt.Errorf("ro and rw given twice: %w", ErrBadMount)
		}
		b, berr := boolValue()
		if k == "rw" || k == "readwrite" {
			b = !b
		}
		mo.readonly, err = &b, berr
	case "bind-nonrecursive":
		mo.nonRecursive, err = boolValue()
	case "bind-propagation":
		if propagationOptions[v] == 0 {
			return fmt.Errorf("bind-propagation=%q is not a propagation mode: %w", v, ErrBadMount)
		}
		mo.opts = append(mo.opts, v)
	case "relabel", "z", "Z", "consistency":
	case "tmpfs-size":
		mo.tmpfs = append(mo.tmpfs, "size="+v)
	case "tmpfs-mode":
		if _, err := strconv.ParseUint(v, 8, 32); err != nil {
			return fmt.Errorf("tmpfs-mode=%q is not an octal mode: %w", v, ErrBadMount)
		}
		mo.tmpfs = append(mo.tmpfs, "mode="+v)
	case "id", "mode", "uid", "gid", "sharing":
		return mo.cache.add(k, v)
	default:
		if slices.Contains(mountFlags, k) && !hasValue {
			mo.opts = append(mo.opts, k)
			return nil
		}
		return fmt.Errorf("unsupported key %q: %w", k, ErrBadMount)
	}
	return err
}

func (c *CacheRequest) add(k, v string) error {
	switch k {
	case "id":
		c.ID = v
	case "mode":
		n, err := strconv.ParseUint(v, 8, 32)
		if err != nil {
			return fmt.Errorf("unable to parse cache mode %q: %w", v, ErrBadMount)
		}
		c.Mode = os.FileMode(n)
	case "uid", "gid":
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("unable to parse cache %s %q: %w", k, v, ErrBadMount)
		}
		if k == "uid" {
			c.UID = n
		} else {
			c.GID = n
		}
	case "sharing":
		switch v {
		case "shared", "private":
		case "locked":
			c.Locked = true
		default:
			return fmt.Errorf("unrecognized value %q for field `sharing`: %w", v, ErrBadMount)
		}
	}
	return nil
}

// request checks the collected fields against the type and makes the
// mount.
func (mo *mountOptions) request() (MountRequest, error) {
	typ := cmp.Or(mo.typ, "bind")
	if mo.target == "" || !filepath.IsAbs(mo.target) {
		return MountRequest{}, fmt.Errorf("target %q is not an absolute path: %w", mo.target, ErrBadMount)
	}
	req := MountRequest{Mount: specs.Mount{Destination: filepath.Clean(mo.target)}}
	only := func(keys ...string) error {
		for k := range mo.seen {
			if slices.Contains(keys, k) {
				return fmt.Errorf("%s is not an option of type=%s: %w", k, typ, ErrBadMount)
			}
		}
		return nil
	}
	mode := func(defaultRO bool) string {
		if (mo.readonly == nil && defaultRO) || (mo.readonly != nil && *mo.readonly) {
			return "ro"
		}
		return "rw"
	}
	bind := "rbind"
	if mo.nonRecursive {
		bind = "bind"
	}
	switch typ {
	case "bind":
		if err := only("tmpfs-size", "tmpfs-mode", "id", "mode", "uid", "gid", "sharing"); err != nil {
			return req, err
		}
		if mo.from == "" && mo.source == "" {
			return req, fmt.Errorf("bind needs a source: %w", ErrBadMount)
		}
		req.Type, req.From = "bind", mo.from
		req.Source = filepath.Clean(mo.source)
		if mo.from != "" {
			req.Source = filepath.Clean("/" + mo.source)
		}
		req.Options = append([]string{bind, mode(true)}, mo.opts...)
	case "tmpfs":
		if err := only("source", "src", "from", "bind-nonrecursive", "bind-propagation", "id", "mode", "uid", "gid", "sharing", OptionChown); err != nil {
			return req, err
		}
		req.Type, req.Source = "tmpfs", "tmpfs"
		req.Options = append(append([]string{mode(false), "nosuid", "nodev"}, mo.opts...), mo.tmpfs...)
	case "cache":
		if err := only("tmpfs-size", "tmpfs-mode", "source", "src"); err != nil {
			return req, err
		}
		if mo.from != "" {
			// Buildah's words: a cache's from names a stage, and a run has none.
			return req, fmt.Errorf("no stage found with name %s: %w", mo.from, ErrBadMount)
		}
		c := mo.cache
		c.ID = cmp.Or(c.ID, req.Destination)
		req.Type, req.Cache = "bind", &c
		req.Options = append([]string{bind, mode(false)}, mo.opts...)
	default:
		return req, fmt.Errorf("invalid filesystem type %q (bind, tmpfs or cache): %w", typ, ErrBadMount)
	}
	return req, nil
}
