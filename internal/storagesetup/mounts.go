package storagesetup

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/storagesetup/loop"
)

// MountInfo is one mount of this process's mount table.
type MountInfo struct {
	Major, Minor uint32
	Target       string
	FSType       string
	Source       string
	Options      string // per-mount and superblock options, comma-joined
}

// Mounts reads the mount table of this process.
func Mounts() ([]MountInfo, error) {
	ms, err := mountinfo.GetMounts(nil)
	if err != nil {
		return nil, err
	}
	out := make([]MountInfo, len(ms))
	for i, m := range ms {
		out[i] = MountInfo{
			Major: uint32(m.Major), Minor: uint32(m.Minor),
			Target: m.Mountpoint, FSType: m.FSType, Source: m.Source,
			Options: m.Options + "," + m.VFSOptions,
		}
	}
	return out, nil
}

// MountOf returns the mount that holds path: the longest mounted prefix.
func MountOf(path string) (MountInfo, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return MountInfo{}, err
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	ms, err := Mounts()
	if err != nil {
		return MountInfo{}, err
	}
	best := MountInfo{}
	for _, m := range ms {
		if (abs == m.Target || strings.HasPrefix(abs, strings.TrimSuffix(m.Target, "/")+"/")) && len(m.Target) >= len(best.Target) {
			best = m
		}
	}
	if best.Target == "" {
		return best, fmt.Errorf("no mount holds %s", path)
	}
	return best, nil
}

// mountedAt returns the mount whose target is exactly dir.
func mountedAt(dir string) (MountInfo, bool) {
	ms, err := Mounts()
	if err != nil {
		return MountInfo{}, false
	}
	var found MountInfo
	ok := false
	for _, m := range ms {
		if m.Target == dir {
			found, ok = m, true // the last one is on top
		}
	}
	return found, ok
}

// sameDevice reports whether a mount's source is dev: the device itself,
// or for a regular file the loop device it is bound to.
func sameDevice(m MountInfo, dev string) bool {
	fi, err := os.Stat(dev)
	if err != nil {
		return false
	}
	if fi.Mode().IsRegular() {
		abs, _ := filepath.Abs(dev)
		return loop.BackingFile(m.Source) == abs
	}
	st, ok := fi.Sys().(*unix.Stat_t)
	return ok && unix.Major(st.Rdev) == m.Major && unix.Minor(st.Rdev) == m.Minor
}

// mountDevice mounts dev (a loop device is set up for a regular file) at
// dir with options opts.
func mountDevice(dev, dir, fs, opts string) error {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return err
	}
	src := dev
	if fi, err := os.Stat(dev); err == nil && fi.Mode().IsRegular() {
		l, err := loop.Attach(dev, true)
		if err != nil {
			return err
		}
		defer l.Close() // after the mount holds it, autoclear waits for the unmount
		src = l.Path
	}
	if err := unix.Mount(src, dir, fs, 0, opts); err != nil {
		return fmt.Errorf("mounting %s (%s, %q) on %s: %w", dev, fs, opts, dir, err)
	}
	return nil
}

// dirEmpty reports whether dir is absent, or empty but for lost+found.
func dirEmpty(dir string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return os.IsNotExist(err)
	}
	for _, e := range ents {
		if e.Name() != "lost+found" {
			return false
		}
	}
	return true
}

// fstabLine is the /etc/fstab line that mounts the store.
func fstabLine(what, where, fs, opts string) string {
	if opts == "" {
		opts = "defaults"
	}
	return fmt.Sprintf("%s %s %s %s 0 0", what, escapeFstab(where), fs, opts)
}

func escapeFstab(s string) string { return strings.ReplaceAll(s, " ", `\040`) }

// unescapeFstab undoes the octal escapes of fstab (\040 for a space).
func unescapeFstab(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// updateFstab returns fstab's content with line as the only entry for
// where, and whether that changes anything.
func updateFstab(content, where, line string) (string, bool) {
	var out []string
	found := false
	for _, l := range strings.Split(strings.TrimRight(content, "\n"), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && !strings.HasPrefix(f[0], "#") && unescapeFstab(f[1]) == where {
			if strings.Join(f, " ") == line && !found {
				found = true
				out = append(out, l)
			}
			continue
		}
		if l == "# kiln storage setup" {
			continue
		}
		if l != "" || len(out) > 0 {
			out = append(out, l)
		}
	}
	if found {
		return content, false
	}
	out = append(out, "# kiln storage setup", line)
	return strings.Join(out, "\n") + "\n", true
}

// unitName is systemd's name for the mount unit of path, as
// `systemd-escape --path --suffix=mount` makes it.
func unitName(path string) string {
	p := strings.Trim(filepath.Clean(path), "/")
	if p == "" {
		return "-.mount"
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '/':
			b.WriteByte('-')
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == ':', c == '.' && i > 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	return b.String() + ".mount"
}

// mountUnit is the systemd mount unit that mounts the store.
func mountUnit(what, where, fs, opts string) string {
	if opts == "" {
		opts = "defaults"
	}
	return fmt.Sprintf(`# Written by kiln storage setup.
[Unit]
Description=kiln container storage
Before=local-fs.target

[Mount]
What=%s
Where=%s
Type=%s
Options=%s

[Install]
WantedBy=local-fs.target
`, what, where, fs, opts)
}

// loopFile is the backing file of a loop device source, or "".
func loopFile(source string) string { return loop.BackingFile(source) }
