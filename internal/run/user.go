package run

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// execUser is a resolved --user: ids, supplementary groups and home.
type execUser struct {
	UID, GID uint32
	Groups   []uint32
	Home     string
}

type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// resolveUser resolves spec ("", "name", "uid", "name:group", "uid:gid")
// against /etc/passwd and /etc/group inside root, the way Docker and runc
// do: a numeric uid or gid need not exist; supplementary groups are added
// only when no group is given explicitly.
func resolveUser(root *os.File, spec string) (execUser, error) {
	userPart, groupPart, explicitGroup := strings.Cut(spec, ":")
	if userPart == "" {
		userPart = "0"
	}
	if explicitGroup && groupPart == "" {
		return execUser{}, fmt.Errorf("resolving user %q: empty group: %w", spec, ErrUnknownUser)
	}
	passwd, err := readPasswd(root)
	if err != nil {
		// An /etc/passwd that cannot be read (a symlink loop, one
		// leading out of the root) names no user: Buildah's words.
		return execUser{}, fmt.Errorf("%w error looking up user %q: %w", ErrUnknownUser, userPart, err)
	}
	u := execUser{Home: "/"}
	var matched *passwdEntry
	for i := range passwd {
		if passwd[i].name == userPart {
			matched = &passwd[i]
			break
		}
	}
	if matched == nil {
		id, err := parseID(userPart)
		if err != nil {
			// Buildah's words, which scripts match.
			return execUser{}, fmt.Errorf("%w error looking up user %q: not in the image's /etc/passwd", ErrUnknownUser, userPart)
		}
		u.UID = id
		for i := range passwd {
			if passwd[i].uid == id {
				matched = &passwd[i]
				break
			}
		}
	}
	if matched != nil {
		u.UID, u.GID, u.Home = matched.uid, matched.gid, matched.home
	}
	groups, err := readGroup(root)
	if err != nil {
		return execUser{}, err
	}
	if explicitGroup {
		gid, err := lookupGroup(groups, groupPart)
		if err != nil {
			return execUser{}, fmt.Errorf("resolving user %q: %w", spec, err)
		}
		u.GID = gid
		return u, nil
	}
	if matched != nil {
		for _, g := range groups {
			if g.gid != u.GID && contains(g.members, matched.name) && !containsID(u.Groups, g.gid) {
				u.Groups = append(u.Groups, g.gid)
			}
		}
	}
	return u, nil
}

func lookupGroup(groups []groupEntry, name string) (uint32, error) {
	for _, g := range groups {
		if g.name == name {
			return g.gid, nil
		}
	}
	if id, err := parseID(name); err == nil {
		return id, nil
	}
	return 0, fmt.Errorf("no group %q in the image's /etc/group: %w", name, ErrUnknownUser)
}

func parseID(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func containsID(list []uint32, id uint32) bool {
	for _, x := range list {
		if x == id {
			return true
		}
	}
	return false
}

// readDB reads an /etc file in root; a missing file is empty.
func readDB(root *os.File, p string) ([][]string, error) {
	b, err := readFileInRoot(root, p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the image's %s: %w", p, err)
	}
	var rows [][]string
	for line := range strings.SplitSeq(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		rows = append(rows, strings.Split(line, ":"))
	}
	return rows, nil
}

func readPasswd(root *os.File) ([]passwdEntry, error) {
	rows, err := readDB(root, "/etc/passwd")
	var out []passwdEntry
	for _, r := range rows {
		if len(r) < 4 {
			continue
		}
		uid, err1 := parseID(r[2])
		gid, err2 := parseID(r[3])
		if err1 != nil || err2 != nil {
			continue
		}
		e := passwdEntry{name: r[0], uid: uid, gid: gid, home: "/"}
		if len(r) > 5 && r[5] != "" {
			e.home = r[5]
		}
		out = append(out, e)
	}
	return out, err
}

func readGroup(root *os.File) ([]groupEntry, error) {
	rows, err := readDB(root, "/etc/group")
	var out []groupEntry
	for _, r := range rows {
		if len(r) < 3 {
			continue
		}
		gid, err := parseID(r[2])
		if err != nil {
			continue
		}
		e := groupEntry{name: r[0], gid: gid}
		if len(r) > 3 && r[3] != "" {
			e.members = strings.Split(r[3], ",")
		}
		out = append(out, e)
	}
	return out, err
}
