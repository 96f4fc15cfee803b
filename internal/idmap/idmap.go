// Package idmap holds uid and gid mappings and the user namespace a
// rootless kiln runs in: the ranges /etc/subuid and /etc/subgid give a
// user, the mapping built from them (0 inside is the user, 1..N the
// subordinate IDs), the mapping this process runs under, and the
// re-execution of kiln into a new user and mount namespace with
// newuidmap and newgidmap (reexec.go), the way Buildah and Podman do it.
//
// It imports nothing of kiln; every other package asks it whether IDs
// are mapped and by what.
package idmap

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
)

// ErrUnmapped is wrapped by the errors about an ID the user namespace
// does not map (a file in a layer owned by an ID beyond the user's
// subordinate range).
var ErrUnmapped = errors.New("id not mapped in the user namespace")

// Mapping maps Size IDs from ContainerID inside a namespace to HostID in
// its parent, as one line of /proc/PID/uid_map does.
type Mapping struct {
	ContainerID, HostID, Size uint32
}

// Mappings are the lines of one uid_map or gid_map.
type Mappings []Mapping

// String is the mapping as newuidmap takes it and Buildah's
// --userns-uid-map writes it: "0:1000:1,1:100000:65536".
func (m Mappings) String() string {
	parts := make([]string, len(m))
	for i, l := range m {
		parts[i] = fmt.Sprintf("%d:%d:%d", l.ContainerID, l.HostID, l.Size)
	}
	return strings.Join(parts, ",")
}

// ToHost returns the parent namespace's ID for the namespace's id.
func (m Mappings) ToHost(id uint32) (uint32, bool) {
	for _, l := range m {
		if id >= l.ContainerID && uint64(id) < uint64(l.ContainerID)+uint64(l.Size) {
			return l.HostID + (id - l.ContainerID), true
		}
	}
	return 0, false
}

// ToContainer returns the namespace's ID for the parent's id.
func (m Mappings) ToContainer(id uint32) (uint32, bool) {
	for _, l := range m {
		if id >= l.HostID && uint64(id) < uint64(l.HostID)+uint64(l.Size) {
			return l.ContainerID + (id - l.HostID), true
		}
	}
	return 0, false
}

// Contains reports whether the namespace maps its id.
func (m Mappings) Contains(id uint32) bool {
	_, ok := m.ToHost(id)
	return ok
}

// Size is how many IDs the mappings map.
func (m Mappings) Size() uint64 {
	var n uint64
	for _, l := range m {
		n += uint64(l.Size)
	}
	return n
}

// Identity reports whether m maps every ID to itself, as the initial
// user namespace's "0 0 4294967295" does.
func (m Mappings) Identity() bool {
	return len(m) == 1 && m[0].ContainerID == 0 && m[0].HostID == 0 && m[0].Size == ^uint32(0)
}

// Describe names the IDs m maps and what they are outside, for errors:
// "0 (host 1000), 1-65536 (host 100000-165535)".
func (m Mappings) Describe() string {
	span := func(start, size uint32) string {
		if size == 1 {
			return strconv.FormatUint(uint64(start), 10)
		}
		return fmt.Sprintf("%d-%d", start, uint64(start)+uint64(size)-1)
	}
	parts := make([]string, len(m))
	for i, l := range m {
		parts[i] = fmt.Sprintf("%s (host %s)", span(l.ContainerID, l.Size), span(l.HostID, l.Size))
	}
	return strings.Join(parts, ", ")
}

// ParseMappings reads the format of /proc/PID/uid_map: one mapping a
// line, three numbers each.
func ParseMappings(r io.Reader) (Mappings, error) {
	var out Mappings
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("parsing id map line %q: want 3 fields", sc.Text())
		}
		var n [3]uint32
		for i, s := range f {
			v, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("parsing id map line %q: %w", sc.Text(), err)
			}
			n[i] = uint32(v)
		}
		out = append(out, Mapping{ContainerID: n[0], HostID: n[1], Size: n[2]})
	}
	return out, sc.Err()
}

// ParseMappingFlag reads Buildah's --userns-uid-map form,
// "CONTAINER:HOST:SIZE" triples separated by commas.
func ParseMappingFlag(s string) (Mappings, error) {
	var out Mappings
	for part := range strings.SplitSeq(s, ",") {
		f := strings.Split(strings.TrimSpace(part), ":")
		if len(f) != 3 {
			return nil, fmt.Errorf("parsing id mapping %q: want CONTAINER:HOST:SIZE", part)
		}
		var n [3]uint32
		for i, s := range f {
			v, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("parsing id mapping %q: %w", part, err)
			}
			n[i] = uint32(v)
		}
		if n[2] == 0 {
			return nil, fmt.Errorf("parsing id mapping %q: size 0", part)
		}
		out = append(out, Mapping{ContainerID: n[0], HostID: n[1], Size: n[2]})
	}
	return out, nil
}

// IDMap is the uid and gid mappings of one user namespace.
type IDMap struct {
	UIDs, GIDs Mappings
}

var current struct {
	once    sync.Once
	m       IDMap
	err     error
	assumed bool // set by Assume
}

// Current returns the mappings of the user namespace this process runs
// in, read once from /proc/self/uid_map and gid_map (a process's
// mappings never change once written).
func Current() (IDMap, error) {
	current.once.Do(func() {
		current.m.UIDs, current.err = readMappings("/proc/self/uid_map")
		if current.err == nil {
			current.m.GIDs, current.err = readMappings("/proc/self/gid_map")
		}
	})
	return current.m, current.err
}

// Assume makes Current return m from now on, for a rootless kiln that
// does the work of its user namespace as the user itself, outside it
// (cmd/kiln): it checks layer owners against the mappings the namespace
// would have, and takes the namespace's view (InUserNamespace). It
// reports false, changing nothing, once Current has been read.
func Assume(m IDMap) bool {
	assumed := false
	current.once.Do(func() { current.m, current.assumed, assumed = m, true, true })
	return assumed
}

// Assumed reports whether Assume took effect: this process works for a
// user namespace it is not in. It is then root there (EffectiveIDs),
// and files it reads show host IDs, which only the namespace would show
// as the image's.
func Assumed() bool {
	Current()
	return current.assumed
}

// EffectiveIDs are the uid and gid this process creates files as, in its
// user namespace, or the one it Assumed (whose root it works as).
func EffectiveIDs() (uid, gid int) {
	if Assumed() {
		return 0, 0
	}
	return os.Geteuid(), os.Getegid()
}

func readMappings(path string) (Mappings, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	m, err := ParseMappings(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return m, nil
}

// InUserNamespace reports whether this process runs in a user namespace
// other than the initial one: a rootless kiln, or kiln in a container
// that has one.
func InUserNamespace() bool {
	m, err := Current()
	return err == nil && !m.UIDs.Identity()
}

// CheckOwner returns an error wrapping ErrUnmapped when the current user
// namespace does not map uid or gid; what names the file it is about.
// In the initial namespace every ID is mapped.
func CheckOwner(what string, uid, gid int) error {
	m, err := Current()
	if err != nil || m.UIDs.Identity() {
		return err
	}
	if uid < 0 || uid > int(^uint32(0)) || !m.UIDs.Contains(uint32(uid)) {
		return fmt.Errorf("%w: %s is owned by uid %d, and this user namespace maps uids %s only: give the user a larger range in /etc/subuid", ErrUnmapped, what, uid, m.UIDs.Describe())
	}
	if gid < 0 || gid > int(^uint32(0)) || !m.GIDs.Contains(uint32(gid)) {
		return fmt.Errorf("%w: %s is owned by gid %d, and this user namespace maps gids %s only: give the user a larger range in /etc/subgid", ErrUnmapped, what, gid, m.GIDs.Describe())
	}
	return nil
}
