package idmap

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// The files that give users their subordinate IDs (shadow-utils').
const (
	SubUIDFile = "/etc/subuid"
	SubGIDFile = "/etc/subgid"
)

// Range is one line of /etc/subuid or /etc/subgid that belongs to a
// user: Count IDs from Start.
type Range struct {
	Start, Count uint32
}

// ParseSubIDs returns the ranges r (in the format of /etc/subuid) gives
// the user, named by name or by its numeric id, in file order. Comments,
// blank lines and lines of other users are skipped; a malformed line of
// the user's is an error.
func ParseSubIDs(r io.Reader, name string, id uint32) ([]Range, error) {
	idStr := strconv.FormatUint(uint64(id), 10)
	var out []Range
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		if f[0] != idStr && (name == "" || f[0] != name) {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("line %d %q: want NAME:START:COUNT", n, line)
		}
		start, err1 := strconv.ParseUint(f[1], 10, 32)
		count, err2 := strconv.ParseUint(f[2], 10, 32)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("line %d %q: %w", n, line, err)
		}
		if count == 0 || start+count-1 > uint64(^uint32(0)) {
			return nil, fmt.Errorf("line %d %q: the range is empty or beyond uid %d", n, line, ^uint32(0))
		}
		out = append(out, Range{Start: uint32(start), Count: uint32(count)})
	}
	return out, sc.Err()
}

// SubIDs reads the ranges file gives the user; a missing file gives
// none.
func SubIDs(file, name string, id uint32) ([]Range, error) {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	defer f.Close()
	rs, err := ParseSubIDs(f, name, id)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	return rs, nil
}

// ForUser is the mapping of a rootless user namespace, as Buildah and
// Podman make it: ID 0 inside is id, the user's own, and 1, 2, ... are
// the subordinate ranges one after the other. With no ranges it maps
// the user's id alone.
func ForUser(id uint32, ranges []Range) Mappings {
	m := Mappings{{ContainerID: 0, HostID: id, Size: 1}}
	next := uint32(1)
	for _, r := range ranges {
		if uint64(next)+uint64(r.Count) > uint64(^uint32(0)) {
			break
		}
		m = append(m, Mapping{ContainerID: next, HostID: r.Start, Size: r.Count})
		next += r.Count
	}
	return m
}
