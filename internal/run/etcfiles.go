package run

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// writeEtcFiles generates /etc/hosts, /etc/resolv.conf and /etc/hostname
// into RunDir and adds bind mounts for them, unless a user mount already
// covers the path. The binds are writable so that a process may edit them,
// but what it writes lands in RunDir, never in the layer.
func (p *plan) writeEtcFiles() error {
	dir := filepath.Join(p.o.RunDir, "etc-"+p.id)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("creating run directory for /etc files: %w", err)
	}
	p.runFiles = append(p.runFiles, dir)
	files := []struct {
		dest    string
		content []byte
	}{
		{"/etc/hosts", p.hostsFile()},
		{"/etc/resolv.conf", p.o.Settings.resolvConf(p.resolvConf())},
		{"/etc/hostname", []byte(p.hostname + "\n")},
	}
	if p.o.Settings.NoHosts {
		files = files[1:]
	}
	if p.o.ContainerEnv != "" {
		files = append(files, struct {
			dest    string
			content []byte
		}{"/run/.containerenv", []byte(p.o.ContainerEnv)})
	}
	var mounts []specs.Mount
	for _, f := range files {
		if slices.ContainsFunc(p.o.Mounts, func(m specs.Mount) bool { return path.Clean(m.Destination) == f.dest }) {
			continue
		}
		src := filepath.Join(dir, path.Base(f.dest))
		if err := os.WriteFile(src, f.content, 0o644); err != nil {
			return fmt.Errorf("writing %s for the container: %w", f.dest, err)
		}
		mounts = append(mounts, specs.Mount{
			Destination: f.dest, Type: "bind", Source: src,
			Options: []string{"bind", "rw", "nosuid", "nodev", "noexec"},
		})
	}
	p.mounts = append(mounts, p.o.Mounts...)
	return nil
}

// hostsFile starts from the image's /etc/hosts when it has one and makes
// sure localhost and the hostname resolve.
func (p *plan) hostsFile() []byte {
	base, err := readFileInRoot(p.root, "/etc/hosts")
	if err != nil || len(bytes.TrimSpace(base)) == 0 {
		base = []byte("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	}
	b := bytes.Clone(base)
	if len(b) > 0 && b[len(b)-1] != '\n' {
		b = append(b, '\n')
	}
	if !hostsHasName(base, p.hostname) {
		names := append([]string{p.hostname}, p.o.HostAliases...)
		b = append(b, fmt.Sprintf("127.0.1.1\t%s\n", strings.Join(names, " "))...)
	}
	for _, h := range p.o.Settings.AddHosts {
		if name, ip, err := ParseHost(h); err == nil {
			b = append(b, fmt.Sprintf("%s\t%s\n", ip, name)...)
		}
	}
	return b
}

func hostsHasName(b []byte, name string) bool {
	for line := range strings.SplitSeq(string(b), "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) > 1 && slices.Contains(f[1:], name) {
			return true
		}
	}
	return false
}

// resolvConf is the run's resolv.conf: slirp4netns's resolver behind
// slirp4netns, else resolvConf's.
func (p *plan) resolvConf() []byte {
	if p.net != nil && p.net.slirp {
		return []byte("nameserver " + slirpDNS + "\n")
	}
	return resolvConf(p.newNet)
}

// resolvConf copies the host's resolv.conf. In a private network namespace
// nameservers on loopback are unreachable, so they are dropped, and public
// resolvers are used when none is left.
func resolvConf(private bool) []byte {
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		b = nil
	}
	if !private {
		return b
	}
	var out []string
	servers := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if ip, err := netip.ParseAddr(f[1]); err == nil && ip.IsLoopback() {
				continue
			}
			servers++
		}
		if line != "" {
			out = append(out, line)
		}
	}
	if servers == 0 {
		out = append(out, "nameserver 8.8.8.8", "nameserver 8.8.4.4")
	}
	return []byte(strings.Join(out, "\n") + "\n")
}

// createMountPoints makes sure /proc, /dev, /sys and every mount target
// exist in the rootfs, remembering what it created so that cleanup can
// remove it. Targets under /proc, /dev and /sys live on filesystems the
// isolation mounts, so they are not created in the rootfs.
func (p *plan) createMountPoints() error {
	for _, d := range []string{"/proc", "/dev", "/sys"} {
		c, err := ensureInRoot(p.root, d, false)
		p.created = append(p.created, c...)
		if err != nil {
			return err
		}
	}
	for _, m := range p.mounts {
		dest := path.Clean("/" + m.Destination)
		if underSpecial(dest) {
			continue
		}
		file := false
		if m.Type == "bind" {
			st, err := os.Stat(m.Source)
			if err != nil {
				return fmt.Errorf("bind mount source %s: %w: %w", m.Source, ErrBadMount, err)
			}
			file = !st.IsDir()
		}
		c, err := ensureInRoot(p.root, dest, file)
		switch {
		case !slices.Contains(p.o.KeepMountTargets, m.Destination):
			p.created = append(p.created, c...)
		case file && len(c) > 0 && c[len(c)-1] == dest:
			p.created = append(p.created, dest) // the file stub only
		}
		if err != nil {
			return fmt.Errorf("creating mount point %s: %w", dest, err)
		}
	}
	return nil
}

func underSpecial(p string) bool {
	for _, d := range []string{"/proc", "/dev", "/sys"} {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}
