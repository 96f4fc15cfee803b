package container

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	cfs "github.com/containerd/continuity/fs"
)

// lookupUser resolves "user[:group]" against the root's /etc/passwd and
// /etc/group (see LookupUser).
func lookupUser(root, spec string) (int, int, error) {
	return LookupUser(func(db string) (io.ReadCloser, error) {
		p, err := cfs.RootPath(root, db)
		if err != nil {
			return nil, err
		}
		return os.Open(p)
	}, spec)
}

// LookupUser resolves "user[:group]" against the databases open opens
// ("/etc/passwd", "/etc/group" of a container); numeric ids need no
// entry. A user without a group gets the user's primary group.
func LookupUser(open func(db string) (io.ReadCloser, error), spec string) (int, int, error) {
	u, g, hasGroup := strings.Cut(spec, ":")
	uid, primary, err := lookupID(open, "/etc/passwd", u, 3)
	if err != nil {
		return 0, 0, err
	}
	if !hasGroup {
		if primary < 0 {
			primary = uid
		}
		return uid, primary, nil
	}
	gid, _, err := lookupID(open, "/etc/group", g, -1)
	return uid, gid, err
}

// lookupID finds name (or a number) in a colon-separated database and
// returns field 2 and, when extra >= 0, that field too (-1 if absent).
func lookupID(open func(string) (io.ReadCloser, error), db, name string, extra int) (int, int, error) {
	if n, err := strconv.Atoi(name); err == nil {
		if n < 0 {
			return 0, 0, fmt.Errorf("bad id %d", n)
		}
		return n, -1, nil
	}
	f, err := open(db)
	if err != nil {
		return 0, 0, fmt.Errorf("no %s in the container to look up %q", db, name)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) < 3 || fields[0] != name {
			continue
		}
		id, err := strconv.Atoi(fields[2])
		if err != nil {
			return 0, 0, fmt.Errorf("%s: bad id for %q", db, name)
		}
		second := -1
		if extra >= 0 && len(fields) > extra {
			if v, err := strconv.Atoi(fields[extra]); err == nil {
				second = v
			}
		}
		return id, second, nil
	}
	what := "uid for user" // Buildah's words
	if db == "/etc/group" {
		what = "gid for group"
	}
	return 0, 0, fmt.Errorf("can't find %s %s in the container's %s", what, name, db)
}

func fileOwner(fi os.FileInfo) (int, int) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return 0, 0
}
